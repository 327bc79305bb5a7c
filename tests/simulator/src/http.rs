//! The HTTP front end: routes, authentication, modes and faults, dispatch.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use crate::*;

// ---------------------------------------------------------------------------------------------
// HTTP front end
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    LoginFilter,
    EventsFilter,
    LoginLast,
    EventsLast,
    Lifetime,
    Quota,
    Authentication,
}

impl Route {
    pub(crate) fn parse(path: &str) -> Option<Route> {
        let p = path.trim_end_matches('/').to_ascii_lowercase();
        Some(match p.as_str() {
            "/api/2.0/security/audit/login/filter" => Route::LoginFilter,
            "/api/2.0/security/audit/events/filter" => Route::EventsFilter,
            "/api/2.0/security/audit/login/last" => Route::LoginLast,
            "/api/2.0/security/audit/events/last" => Route::EventsLast,
            "/api/2.0/security/audit/settings/lifetime" => Route::Lifetime,
            "/api/2.0/portal/quota" => Route::Quota,
            "/api/2.0/authentication" => Route::Authentication,
            _ => return None,
        })
    }

    pub(crate) fn stream(self) -> Option<SimStream> {
        match self {
            Route::LoginFilter | Route::LoginLast => Some(SimStream::Login),
            Route::EventsFilter | Route::EventsLast => Some(SimStream::Audit),
            Route::Lifetime | Route::Quota | Route::Authentication => None,
        }
    }

    pub(crate) fn is_filter(self) -> bool {
        matches!(self, Route::LoginFilter | Route::EventsFilter)
    }

    /// Whether `PaymentFilter` lets the route through on an unpaid portal (`[AllowNotPayment]`).
    pub(crate) fn allow_not_payment(self) -> bool {
        matches!(self, Route::Quota | Route::Authentication)
    }

    /// Controller named in error stacks.
    pub(crate) fn controller(self) -> &'static str {
        match self {
            Route::Quota => "PortalController",
            Route::Authentication => "AuthenticationController",
            _ => "SecurityController",
        }
    }

    /// Controller method named in error stacks.
    pub(crate) fn method_name(self) -> &'static str {
        match self {
            Route::LoginFilter => "GetLoginEventsByFilter(LoginEventRequestDto inDto)",
            Route::EventsFilter => "GetAuditEventsByFilter(AuditEventRequestDto inDto)",
            Route::LoginLast => "GetLastLoginEvents()",
            Route::EventsLast => "GetLastAuditEvents()",
            Route::Lifetime => "GetAuditSettings()",
            Route::Quota => "GetPortalQuota()",
            Route::Authentication => "GetIsAuthentificated()",
        }
    }
}

/// What the HTTP front end passes on to [`Simulator::dispatch`].
pub(crate) struct Incoming<'a> {
    pub(crate) path: &'a str,
    pub(crate) method: &'a Method,
    pub(crate) query: &'a str,
    pub(crate) auth: Option<&'a [u8]>,
    pub(crate) href: &'a str,
    /// Whether `PaymentFilter` checks this request: the `Payment-Info` header is absent, empty
    /// or `true` (`bool.TryParse`); `false` or any other value skips the check.
    pub(crate) payment_checked: bool,
}

pub(crate) fn payment_checked(header: Option<&HeaderValue>) -> bool {
    match header.map(|v| v.to_str().map(str::trim)) {
        None | Some(Ok("")) => true,
        Some(Ok(v)) => v.eq_ignore_ascii_case("true"),
        Some(Err(_)) => false,
    }
}

pub(crate) async fn handle(State(sim): State<Simulator>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let href = if query.is_empty() {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}{path}?{query}")
    };
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let (limited, latency) = {
        let mut g = sim.lock();
        let spread = g.latency_max.saturating_sub(g.latency);
        let extra = if spread.is_zero() {
            Duration::ZERO
        } else {
            // Nanosecond draws; a spread over u64::MAX ns (584 years) is not a latency.
            let nanos = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(g.rng.u64(0..=nanos))
        };
        (g.rate_check(), g.latency + extra)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (authorized, response) = match limited {
        // The limiter runs before authentication and the action, like the real middleware.
        Some(retry_after) => {
            let per_minute = sim.lock().rate.as_ref().map_or(1500, |w| w.per_minute);
            (
                auth.is_some(),
                too_many_requests_limit(Some(retry_after), per_minute),
            )
        }
        None => {
            let incoming = Incoming {
                path: &path,
                method: &parts.method,
                query: &query,
                auth: auth.as_deref(),
                href: &href,
                payment_checked: payment_checked(parts.headers.get("payment-info")),
            };
            sim.dispatch(&incoming).await
        }
    };
    sim.record(SimRequest {
        path,
        query,
        authorized,
        status: response.status().as_u16(),
    });
    response
}

impl Simulator {
    pub(crate) async fn dispatch(&self, req: &Incoming<'_>) -> (bool, Response) {
        let href = req.href;
        let (key_ok, mode) = {
            let g = self.lock();
            let expected = format!("Bearer {}", g.cfg.api_key);
            (req.auth == Some(expected.as_bytes()), g.mode)
        };
        let authorized = key_ok && mode != SimMode::Unauthorized;
        let Some(route) = Route::parse(req.path) else {
            return (authorized, empty_response(StatusCode::NOT_FOUND));
        };
        if req.method != Method::GET {
            let mut resp = empty_response(StatusCode::METHOD_NOT_ALLOWED);
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return (authorized, resp);
        }

        let mut truncate = false;
        if route.is_filter() {
            let fault = {
                let mut g = self.lock();
                if let Some(stream) = route.stream() {
                    g.apply_live_inserts(stream);
                }
                g.next_fault()
            };
            match fault {
                None => {}
                Some(SimFault::TooManyRequests { retry_after }) => {
                    return (authorized, too_many_requests(retry_after));
                }
                Some(SimFault::ServerError(code)) => {
                    let status =
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return (authorized, server_error(status, route));
                }
                Some(SimFault::BadGatewayHtml) => return (authorized, bad_gateway_html()),
                Some(SimFault::Malformed) => return (authorized, malformed()),
                Some(SimFault::Truncated) => truncate = true,
                Some(SimFault::Delay(d)) => tokio::time::sleep(d).await,
            }
        }

        if route == Route::Authentication {
            return (
                authorized,
                self.envelope_response(StatusCode::OK, &authorized, 1, href),
            );
        }
        if !authorized {
            return (false, empty_response(StatusCode::UNAUTHORIZED));
        }
        // `PaymentFilter` is a resource filter: after authorization, before model binding.
        if mode == SimMode::Unpaid && req.payment_checked && !route.allow_not_payment() {
            return (true, empty_response(StatusCode::PAYMENT_REQUIRED));
        }

        // Model binding and validation run before the action body (and its permission checks).
        let params = match route {
            Route::LoginFilter | Route::EventsFilter => {
                let local = self.lock().local_offset;
                match FilterParams::parse(req.query, route == Route::EventsFilter, local) {
                    Ok(p) => Some(p),
                    Err(errors) => return (true, self.validation_response(errors, href)),
                }
            }
            _ => None,
        };

        match mode {
            SimMode::Forbidden => return (true, access_denied(route)),
            // `DemandBaseAuditPermission`, which the quota does not call.
            SimMode::PaymentRequired if route != Route::Quota => {
                return (true, payment_required(route));
            }
            _ => {}
        }

        let response = match (route, route.stream()) {
            (Route::Lifetime, _) => {
                let body = Lifetime {
                    login_history_life_time: 180,
                    audit_trail_life_time: 180,
                    last_modified: "0001-01-01T00:00:00",
                };
                self.envelope_response(StatusCode::OK, &body, 1, href)
            }
            (Route::Quota, _) => {
                let quota = Quota::of_plan(mode != SimMode::NoAuditPlan);
                self.envelope_response(StatusCode::OK, &quota, 1, href)
            }
            (_, Some(stream)) => {
                // `!quota.Audit || !IsVisibleSettings("LoginHistory")`: the `*/last` answer.
                let fallback = matches!(mode, SimMode::NoAuditPlan | SimMode::HiddenLoginHistory);
                let filter = if fallback { None } else { params.as_ref() };
                self.events_response(route, stream, filter, href, truncate)
            }
            (_, None) => empty_response(StatusCode::NOT_FOUND),
        };
        (true, response)
    }

    /// The answer with the events of `stream`; `filter = None` means the "latest 20, shortened
    /// text" behaviour of `*/last` and of the no-audit fallback. A page holding a row the server
    /// cannot convert is a 500.
    pub(crate) fn events_response(
        &self,
        route: Route,
        stream: SimStream,
        filter: Option<&FilterParams>,
        href: &str,
        truncate: bool,
    ) -> Response {
        let mut g = self.lock();
        let Inner {
            login,
            audit,
            rng,
            random_ties,
            cfg,
            fall_back_bug,
            ..
        } = &mut *g;
        let table = match stream {
            SimStream::Login => login,
            SimStream::Audit => audit,
        };
        table.ensure_ordered();
        let table = &*table;
        let ties = if *random_ties { Some(rng) } else { None };
        let picked = select_rows(table, stream, filter, ties);
        let rows: Vec<&Row> = picked.iter().map(|&i| table.row(i)).collect();
        if let Some(frames) = unconvertible(stream, &rows) {
            return null_reference(frames, route);
        }
        let dates = DateStyle {
            zone: cfg.zone,
            fall_back_bug: *fall_back_bug,
        };
        let limited = filter.is_none();
        let count = rows.len();
        let body = match stream {
            SimStream::Login => {
                let items: Vec<LoginItem<'_>> = rows
                    .iter()
                    .map(|r| LoginItem::new(r, dates, limited))
                    .collect();
                envelope_json(&items, count, href, 0, 200)
            }
            SimStream::Audit => {
                let items: Vec<AuditItem<'_>> = rows
                    .iter()
                    .map(|r| AuditItem::new(r, dates, limited))
                    .collect();
                envelope_json(&items, count, href, 0, 200)
            }
        };
        match body {
            Ok(body) if truncate => json_response(StatusCode::OK, truncate_body(body)),
            Ok(body) => json_response(StatusCode::OK, body),
            Err(_) => server_error(StatusCode::INTERNAL_SERVER_ERROR, route),
        }
    }

    pub(crate) fn envelope_response<T: Serialize>(
        &self,
        status: StatusCode,
        payload: &T,
        count: usize,
        href: &str,
    ) -> Response {
        match envelope_json(payload, count, href, 0, status.as_u16()) {
            Ok(body) => json_response(status, body),
            Err(_) => empty_response(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    pub(crate) fn validation_response(
        &self,
        errors: BTreeMap<String, Vec<String>>,
        href: &str,
    ) -> Response {
        let trace_id = {
            let mut g = self.lock();
            format!("00-{:032x}-{:016x}-00", g.rng.u128(..), g.rng.u64(..))
        };
        let problem = ProblemDetails {
            kind: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            title: "One or more validation errors occurred.",
            status: 400,
            errors,
            trace_id,
        };
        match envelope_json(&problem, 1, href, 1, 400) {
            Ok(body) => json_response(StatusCode::BAD_REQUEST, body),
            Err(_) => empty_response(StatusCode::BAD_REQUEST),
        }
    }
}
