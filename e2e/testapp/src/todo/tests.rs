use super::{backend::Backend, postgres, ui::Ui};
use crate::{
    listen::Server,
    test_util::{any_port, closed_port, fetch, get, text},
};
use http::{Method, StatusCode, header};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const TIMEOUT: Duration = Duration::from_secs(5);

struct Chain {
    _postgres: Server,
    backend: Server,
    ui: Server,
}

async fn chain() -> Chain {
    let postgres = postgres::start(any_port()).await.unwrap();
    let backend = Backend::new(
        "backend-1".into(),
        "127.0.0.1".into(),
        postgres.addr().port(),
    )
    .start(any_port())
    .await
    .unwrap();
    let ui = Ui::new("ui-1".into(), "127.0.0.1", backend.addr().port(), TIMEOUT)
        .unwrap()
        .start(any_port())
        .await
        .unwrap();
    Chain {
        _postgres: postgres,
        backend,
        ui,
    }
}

#[tokio::test]
async fn the_ui_lists_and_adds_todos_through_the_backend_and_the_database() {
    let Chain {
        ui,
        backend,
        _postgres,
    } = chain().await;
    let empty = get(ui.addr(), "/").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.served_by.as_deref(), Some("ui-1"));
    assert!(!text(&empty).contains("<li>"), "{}", text(&empty));

    let (added, _) = fetch(
        ui.addr(),
        Method::POST,
        "/",
        "toDo=buy+milk%21+%3Cnow%3E",
        false,
    )
    .await;
    assert_eq!(added.status, StatusCode::FOUND, "{}", text(&added));

    let (direct, _) = fetch(
        backend.addr(),
        Method::POST,
        "/todos",
        "walk the dog",
        false,
    )
    .await;
    assert_eq!(direct.status, StatusCode::CREATED);
    assert_eq!(direct.served_by.as_deref(), Some("backend-1"));
    let (by_path, _) = fetch(
        backend.addr(),
        Method::POST,
        "/todos/sleep%20well",
        "",
        false,
    )
    .await;
    assert_eq!(by_path.status, StatusCode::CREATED);

    let todos: Vec<String> =
        serde_json::from_slice(&get(backend.addr(), "/todos").await.body).unwrap();
    assert_eq!(todos, ["buy milk! <now>", "walk the dog", "sleep well"]);
    let page = text(&get(ui.addr(), "/").await);
    assert!(page.contains("<li>buy milk! &lt;now&gt;</li>"), "{page}");
    assert!(page.contains("<li>sleep well</li>"), "{page}");
}

#[tokio::test]
async fn the_ui_redirects_after_adding() {
    let chain = chain().await;
    let client = crate::client::new(false);
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/", chain.ui.addr()))
        .body(http_body_util::Full::from("toDo=x"))
        .unwrap();
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::FOUND);
    assert_eq!(rsp.headers()[header::LOCATION], "/");
}

#[tokio::test]
async fn without_the_database_the_backend_answers_503_and_the_ui_502() {
    let backend = Backend::new("b".into(), "127.0.0.1".into(), closed_port())
        .start(any_port())
        .await
        .unwrap();
    let todos = get(backend.addr(), "/todos").await;
    assert_eq!(todos.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        text(&todos).contains("database 127.0.0.1:"),
        "{}",
        text(&todos)
    );
    assert_eq!(get(backend.addr(), "/healthz").await.status, StatusCode::OK);

    let ui = Ui::new("u".into(), "127.0.0.1", backend.addr().port(), TIMEOUT)
        .unwrap()
        .start(any_port())
        .await
        .unwrap();
    let page = get(ui.addr(), "/").await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert!(
        text(&page).contains("answered 503 Service Unavailable: database"),
        "{}",
        text(&page)
    );
}

#[tokio::test]
async fn without_the_backend_the_ui_answers_502_with_the_reason() {
    let ui = Ui::new("u".into(), "127.0.0.1", closed_port(), TIMEOUT)
        .unwrap()
        .start(any_port())
        .await
        .unwrap();
    let page = get(ui.addr(), "/").await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert!(text(&page).contains("connect"), "{}", text(&page));
    let (bad_form, _) = fetch(ui.addr(), Method::POST, "/", "other=1", false).await;
    assert_eq!(bad_form.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stress_is_slow_on_both_tiers() {
    let Chain {
        ui,
        backend,
        _postgres,
    } = chain().await;
    for addr in [ui.addr(), backend.addr()] {
        let (rsp, took) = fetch(addr, Method::GET, "/stress", "", false).await;
        assert_eq!(rsp.status, StatusCode::OK);
        assert!(took >= super::STRESS_DELAY, "{took:?}");
    }
}

#[tokio::test]
async fn postgres_echoes_lines_on_many_connections_at_once() {
    let server = postgres::start(any_port()).await.unwrap();
    let mut conns = Vec::new();
    for i in 0..20 {
        let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        conns.push((i, BufReader::new(stream)));
    }
    for round in 0..2 {
        for (i, conn) in &mut conns {
            let line = format!("conn {i} round {round}\n");
            conn.get_mut().write_all(line.as_bytes()).await.unwrap();
            let mut echo = String::new();
            conn.read_line(&mut echo).await.unwrap();
            assert_eq!(echo, line);
        }
    }
}

#[test]
fn forms_decode_and_html_escapes() {
    use super::form::{escape, field, percent_decode};
    assert_eq!(field("a=1&toDo=x+y%26z", "toDo").as_deref(), Some("x y&z"));
    assert_eq!(field("a=1", "toDo"), None);
    assert_eq!(percent_decode("100%+%zz%4", false), "100%+%zz%4");
    assert_eq!(percent_decode("%C3%A9", true), "é");
    assert_eq!(
        escape("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}
