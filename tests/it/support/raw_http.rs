//! A loopback HTTP receiver that keeps each request's body as bytes and its `Content-Type`,
//! whatever the body is (an NDJSON webhook POST is not one JSON document).

use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

/// One POST as received.
#[derive(Debug, Clone)]
pub struct RawPost {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Answers every POST to `/ingest` with 200 and records it.
#[derive(Clone)]
pub struct RawHttp {
    pub url: String,
    posts: Arc<Mutex<Vec<RawPost>>>,
}

impl RawHttp {
    pub async fn start() -> RawHttp {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode, header};
        async fn handle(
            State(posts): State<Arc<Mutex<Vec<RawPost>>>>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            posts.lock().expect("lock").push(RawPost {
                content_type,
                body: body.to_vec(),
            });
            StatusCode::OK
        }
        let posts = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route("/ingest", axum::routing::post(handle))
            .with_state(posts.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RawHttp {
            url: format!("http://{addr}/ingest"),
            posts,
        }
    }

    /// Every POST so far, in order.
    pub fn posts(&self) -> Vec<RawPost> {
        self.posts.lock().expect("lock").clone()
    }

    /// The lines of every NDJSON body so far, in order (each body must end in LF).
    pub fn lines(&self) -> Vec<String> {
        self.posts()
            .iter()
            .flat_map(|p| {
                let text = String::from_utf8(p.body.clone()).expect("the body is UTF-8");
                assert!(text.ends_with('\n'), "an NDJSON body ends in LF: {text:?}");
                text.lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect()
    }
}
