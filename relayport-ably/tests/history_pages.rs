//! `RealtimeProvider::history_page` over Ably's REST history: the query's direction, limit and
//! start reach the request, and the next page follows Ably's `Link: rel="next"` as given.

mod support;

use relayport_ably::token::ApiKey;
use relayport_ably::{AblyConfig, AblyRealtime, Credentials};
use relayport_core::{Channel, HistoryQuery, RealtimeProvider};
use serde_json::json;
use support::HttpPeer;

fn exchange(query: serde_json::Value, link: Option<&str>, ids: &[&str]) -> serde_json::Value {
    let mut headers = json!({});
    if let Some(link) = link {
        headers["link"] = json!(link);
    }
    let body: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "name": "e", "data": id, "timestamp": 1_700_000_000_000u64}))
        .collect();
    json!({
        "method": "GET", "path": "/channels/room/messages",
        "query": query,
        "headers": {"authorization": "Basic YXBwSWQua2V5SWQ6a2V5U2VjcmV0", "accept": "application/json", "x-ably-version": "6"},
        "body": null,
        "response": {"status": 200, "headers": headers, "body": body}
    })
}

#[tokio::test]
async fn history_pages_follow_the_next_link() {
    let http = HttpPeer::start(
        vec![
            exchange(
                json!({"direction": "backwards", "limit": "2", "start": "1700000000000"}),
                Some("<./messages?cursor=abc&limit=2>; rel=\"next\""),
                &["m3", "m2"],
            ),
            exchange(json!({"cursor": "abc", "limit": "2"}), None, &["m1"]),
        ],
        None,
    )
    .await;
    let key = ApiKey::parse("appId.keyId:keySecret").expect("key");
    let provider = AblyRealtime::new(AblyConfig::new(Credentials::Key(key)).local(1, http.port));
    assert!(provider.capabilities().history_pages);
    let room = Channel::public("room");
    let mut query = HistoryQuery::new().limit(2);
    query.start = Some(1_700_000_000_000);
    let first = provider.history_page(&room, &query).await.expect("page 1");
    let ids: Vec<_> = first
        .messages
        .iter()
        .map(|m| m.id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["m3", "m2"]);
    let next = first.next.expect("a next page");
    let second = provider.history_page(&room, &next).await.expect("page 2");
    let ids: Vec<_> = second
        .messages
        .iter()
        .map(|m| m.id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["m1"]);
    assert!(second.next.is_none());
    http.assert_clean();
}
