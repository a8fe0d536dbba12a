//! Issue 17: `subscribe_with` options reach Ably's ATTACH. The core hands the application's
//! `SubscriptionOptions` to every (re)subscribe; an `relayport_ably::ChannelOptions` among
//! them sets the channel params (here `rewind`), over the configuration's per-channel options.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use relayport_ably::token::ApiKey;
use relayport_ably::{AblyConfig, AblyRealtime, ChannelOptions, Credentials};
use relayport_core::{Channel, EventSink, RealtimeProvider, SubscribeOptions, SubscriptionOptions};
use serde_json::Value;
use support::{Script, Tail, WsPeer};

const CONNECTED: &str = r#"{"action":4,"connectionId":"C1","connectionDetails":{"connectionKey":"K1","maxMessageSize":65536,"maxIdleInterval":15000,"connectionStateTtl":120000}}"#;

#[tokio::test]
async fn subscribe_with_channel_options_set_the_attach_params() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[
            (true, CONNECTED),
            (
                false,
                r#"{"action":10,"channel":"room","params":{"rewind":"5"}}"#,
            ),
            (true, r#"{"action":11,"channel":"room","flags":0}"#),
        ],
        Tail::AcceptClose,
    )])
    .await;
    let key = ApiKey::parse("appId.keyId:keySecret").expect("key");
    let mut cfg = AblyConfig::new(Credentials::Key(key)).local(peer.port, 1);
    cfg.realtime_request_timeout = Duration::from_secs(5);
    let p = AblyRealtime::new(cfg);
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    let channel_options = ChannelOptions {
        params: BTreeMap::from([("rewind".to_owned(), "5".to_owned())]),
        ..Default::default()
    };
    let options = SubscribeOptions {
        extensions: SubscriptionOptions::new().with(channel_options),
        ..Default::default()
    };
    support::bounded("attach", p.subscribe(&Channel::public("room"), &options))
        .await
        .expect("attached");
    p.close().await.expect("close");
    peer.finished(0).await;
    peer.assert_clean();
}
