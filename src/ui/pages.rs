//! The two pages — `/`, the job (status, metrics, charts, the dataflow graph) and `/dashboard`,
//! the control room (实时监控大屏) — and their script and style, compiled into the binary so
//! they work with no network. The pages draw their charts themselves (SVG, `assets/ui.js`);
//! there is no third-party script.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const JOB_PAGE: &str = include_str!("assets/job.html");
const DASHBOARD_PAGE: &str = include_str!("assets/dashboard.html");
const SCRIPT: &str = include_str!("assets/ui.js");
const STYLE: &str = include_str!("assets/ui.css");

/// `/`: the job page.
pub async fn job_page() -> Html<&'static str> {
    Html(JOB_PAGE)
}

/// `/dashboard`: the control room.
pub async fn dashboard_page() -> Html<&'static str> {
    Html(DASHBOARD_PAGE)
}

/// `/assets/ui.js` and `/assets/ui.css`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (content_type, body) = match file.as_str() {
        "ui.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "ui.css" => ("text/css; charset=utf-8", STYLE),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
