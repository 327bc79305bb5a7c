//! Wire structs and canned responses (envelopes, errors, the quota).

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use time::OffsetDateTime;

use crate::*;

// ---- wire structs ----------------------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct Link<'a> {
    pub(crate) href: &'a str,
    pub(crate) action: &'a str,
}

#[derive(Serialize)]
pub(crate) struct Envelope<'a, T: Serialize> {
    pub(crate) response: &'a T,
    pub(crate) count: usize,
    pub(crate) links: [Link<'a>; 1],
    pub(crate) status: u8,
    #[serde(rename = "statusCode")]
    pub(crate) status_code: u16,
}

pub(crate) fn envelope_json<T: Serialize>(
    payload: &T,
    count: usize,
    href: &str,
    status: u8,
    status_code: u16,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope {
        response: payload,
        count,
        links: [Link {
            href,
            action: "GET",
        }],
        status,
        status_code,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginItem<'a> {
    pub(crate) id: i64,
    pub(crate) date: String,
    pub(crate) user: &'a str,
    pub(crate) user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) login: Option<&'a str>,
    pub(crate) action: Cow<'a, str>,
    pub(crate) action_id: i32,
    pub(crate) ip: &'a str,
    pub(crate) country: &'a str,
    pub(crate) city: &'a str,
    pub(crate) browser: &'a str,
    pub(crate) platform: &'a str,
    pub(crate) page: &'a str,
}

impl<'a> LoginItem<'a> {
    pub(crate) fn new(row: &'a Row, dates: DateStyle, limited: bool) -> Self {
        let ev = &row.ev;
        LoginItem {
            id: row.id,
            date: dates.render(ev.date),
            user: &ev.user,
            user_id: &ev.user_id,
            login: ev.login.as_deref(),
            action: if limited {
                Cow::Owned(limited_action_text(ev))
            } else {
                Cow::Borrowed(&ev.action_text)
            },
            action_id: ev.action_id,
            ip: render_ip(&ev.ip),
            country: &ev.country,
            city: &ev.city,
            browser: &ev.browser,
            platform: &ev.platform,
            page: &ev.page,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditItem<'a> {
    pub(crate) id: i64,
    pub(crate) date: String,
    pub(crate) user: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) action: Cow<'a, str>,
    pub(crate) action_id: i32,
    pub(crate) ip: &'a str,
    pub(crate) country: &'a str,
    pub(crate) city: &'a str,
    pub(crate) browser: &'a str,
    pub(crate) platform: &'a str,
    pub(crate) page: &'a str,
    pub(crate) action_type: i32,
    pub(crate) product: i32,
    pub(crate) location: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<&'a [String]>,
    pub(crate) entries: &'a [i32],
    pub(crate) context: &'a str,
}

impl<'a> AuditItem<'a> {
    pub(crate) fn new(row: &'a Row, dates: DateStyle, limited: bool) -> Self {
        let ev = &row.ev;
        AuditItem {
            id: row.id,
            date: dates.render(ev.date),
            user: &ev.user,
            user_id: &ev.user_id,
            action: if limited {
                Cow::Owned(limited_action_text(ev))
            } else {
                Cow::Borrowed(&ev.action_text)
            },
            action_id: ev.action_id,
            ip: render_ip(&ev.ip),
            country: &ev.country,
            city: &ev.city,
            browser: &ev.browser,
            platform: &ev.platform,
            page: &ev.page,
            action_type: ev.action_type,
            product: ev.product,
            location: ev.location,
            target: ev.target.as_deref(),
            entries: &ev.entries,
            context: &ev.context,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ProblemDetails {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) title: &'static str,
    pub(crate) status: u16,
    pub(crate) errors: BTreeMap<String, Vec<String>>,
    #[serde(rename = "traceId")]
    pub(crate) trace_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Lifetime {
    pub(crate) login_history_life_time: u32,
    pub(crate) audit_trail_life_time: u32,
    pub(crate) last_modified: &'static str,
}

/// `TenantQuota` as `GET portal/quota` writes it (`common/ASC.Core.Common/Tenants/TenantQuota.cs`):
/// public properties in declaration order, camelCase, null members (`priceCurrencySymbol`,
/// `priceISOCurrencySymbol`, `serviceName`, `serviceGroup`, and `productId`/`dueDate` when unset)
/// omitted. The flags and sizes are read out of `features`, as the server's properties do.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Quota {
    pub(crate) tenant_id: i32,
    pub(crate) name: &'static str,
    pub(crate) price: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) product_id: Option<&'static str>,
    pub(crate) visible: bool,
    pub(crate) wallet: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) due_date: Option<String>,
    pub(crate) features: &'static str,
    pub(crate) max_file_size: i64,
    pub(crate) max_total_size: i64,
    pub(crate) count_user: i32,
    pub(crate) count_room_admin: i32,
    pub(crate) users_in_room: i32,
    pub(crate) count_room: i32,
    pub(crate) non_profit: bool,
    pub(crate) trial: bool,
    pub(crate) free: bool,
    pub(crate) update: bool,
    pub(crate) audit: bool,
    pub(crate) docs_edition: bool,
    pub(crate) ldap: bool,
    pub(crate) sso: bool,
    pub(crate) statistic: bool,
    pub(crate) branding: bool,
    pub(crate) customization: bool,
    pub(crate) lifetime: bool,
    pub(crate) automation_api: bool,
    pub(crate) custom: bool,
    pub(crate) restore: bool,
    pub(crate) oauth: bool,
    pub(crate) content_search: bool,
    pub(crate) third_party: bool,
    pub(crate) year: bool,
    pub(crate) count_free_backup: i32,
    pub(crate) backup: bool,
    #[serde(rename = "countAIAgent")]
    pub(crate) count_ai_agent: i32,
    pub(crate) ai_tools: bool,
}

/// The paid "admin" plan (`DbQuota.cs`, id -9) bought for 5 room admins, as the tariff sum
/// leaves it (`TenantQuota` `*` moves the multiplied `manager` and `total_size` to the end).
pub(crate) const ADMIN_PLAN_FEATURES: &str = "audit,ldap,sso,customization,thirdparty,restore,oauth,contentsearch,file_size:1024,statistic,free_backup:2:fixed,automationapi,manager:5,total_size:1342177280000";
/// The free "startup" plan (`DbQuota.cs`, id -3): no `audit`.
pub(crate) const STARTUP_PLAN_FEATURES: &str =
    "free,oauth,total_size:2147483648,manager:3,room:12,automationapi";

impl Quota {
    /// The tenant quota of a paid portal (`audit`) or of the free plan without audit.
    pub(crate) fn of_plan(audit: bool) -> Quota {
        let features = if audit {
            ADMIN_PLAN_FEATURES
        } else {
            STARTUP_PLAN_FEATURES
        };
        let has = |name: &str| features.split(',').any(|f| f == name);
        let value = |name: &str| {
            features
                .split(',')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.split(':').next()?.parse::<i64>().ok())
        };
        let count = |name: &str| {
            value(name)
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(i32::MAX)
        };
        // `ByteConverter.GetInBytes`: small values are megabytes.
        let size =
            |name: &str| value(name).map_or(i64::MAX, |v| if v < 1 << 20 { v << 20 } else { v });
        let due_date = if audit {
            // A monthly tariff: paid up to a month ahead (a plain UTC `DateTime`).
            let due = OffsetDateTime::now_utc()
                .date()
                .saturating_add(time::Duration::days(30));
            Some(format!(
                "{:04}-{:02}-{:02}T00:00:00",
                due.year(),
                u8::from(due.month()),
                due.day()
            ))
        } else {
            Some("9999-12-31T23:59:59.9999999".to_owned())
        };
        Quota {
            tenant_id: if audit { -9 } else { -3 },
            name: if audit { "admin" } else { "startup" },
            price: if audit { 100 } else { 0 },
            product_id: audit.then_some("1006"),
            visible: audit,
            wallet: false,
            due_date,
            features,
            max_file_size: size("file_size"),
            max_total_size: size("total_size"),
            count_user: count("users"),
            count_room_admin: count("manager"),
            users_in_room: count("usersInRoom"),
            count_room: count("room"),
            non_profit: has("non-profit"),
            trial: has("trial"),
            free: has("free"),
            update: has("update"),
            audit: has("audit"),
            docs_edition: has("docs"),
            ldap: has("ldap"),
            sso: has("sso"),
            statistic: has("statistic"),
            branding: has("branding"),
            customization: has("customization"),
            lifetime: has("lifetime"),
            automation_api: has("automationapi"),
            custom: has("custom"),
            restore: has("restore"),
            oauth: has("oauth"),
            content_search: has("contentsearch"),
            third_party: has("thirdparty"),
            year: has("year"),
            count_free_backup: value("free_backup")
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0),
            backup: has("backup"),
            count_ai_agent: count("aiagent"),
            ai_tools: has("aitools"),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ErrorEnvelope<'a> {
    pub(crate) error: ErrorInner<'a>,
    pub(crate) status: u8,
    #[serde(rename = "statusCode")]
    pub(crate) status_code: u16,
}

#[derive(Serialize)]
pub(crate) struct ErrorInner<'a> {
    pub(crate) message: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: Option<&'a str>,
    pub(crate) stack: Option<&'a str>,
    pub(crate) hresult: i64,
}

/// `EventTypeConverter`: the stored IP is cut at the first `:` (IPv6 → first group).
pub(crate) fn render_ip(ip: &str) -> &str {
    match ip.split_once(':') {
        Some((head, _)) => head,
        None => ip,
    }
}

/// `ToLimitedText`: values of 50 chars or more become the first 47 chars + `...`.
pub(crate) fn limit_text(text: &str) -> Cow<'_, str> {
    if text.chars().count() < 50 {
        Cow::Borrowed(text)
    } else {
        let mut cut: String = text.chars().take(47).collect();
        cut.push_str("...");
        Cow::Owned(cut)
    }
}

/// The action text as `*/last` renders it: only the substituted description values are limited.
/// For codes without a known template the whole text is limited.
pub(crate) fn limited_action_text(ev: &SimEvent) -> String {
    let template = match ev.stream {
        SimStream::Login => LOGIN_TEXTS
            .iter()
            .find(|(c, _)| *c == ev.action_id)
            .map(|(_, t)| *t),
        SimStream::Audit => audit_map(ev.action_id).map(|m| m.template),
    };
    let Some(template) = template else {
        return limit_text(&ev.action_text).into_owned();
    };
    let Some(pos) = template.find("{0}") else {
        return ev.action_text.clone();
    };
    let (prefix, suffix) = (&template[..pos], &template[pos + 3..]);
    let text = ev.action_text.as_str();
    if text.len() >= prefix.len() + suffix.len()
        && text.starts_with(prefix)
        && text.ends_with(suffix)
    {
        let value = &text[prefix.len()..text.len() - suffix.len()];
        let limited: Vec<Cow<'_, str>> = value.split(", ").map(limit_text).collect();
        format!("{prefix}{}{suffix}", limited.join(", "))
    } else {
        ev.action_text.clone()
    }
}

// ---- responses -------------------------------------------------------------------------------

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        HeaderName::from_static("server-timing"),
        HeaderValue::from_static("aspnetcore-request-time;dur=3"),
    );
    resp
}

pub(crate) fn empty_response(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

pub(crate) fn too_many_requests(retry_after: Option<u32>) -> Response {
    too_many_requests_limit(retry_after, 1500)
}

pub(crate) fn too_many_requests_limit(retry_after: Option<u32>, limit: u32) -> Response {
    let mut resp = empty_response(StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers_mut();
    h.insert(
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderValue::from(limit),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from_static("0"),
    );
    if let Some(secs) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    kind: Option<&str>,
    stack: Option<&str>,
    hresult: i64,
) -> Response {
    let body = ErrorEnvelope {
        error: ErrorInner {
            message,
            kind,
            stack,
            hresult,
        },
        status: 1,
        status_code: status.as_u16(),
    };
    match serde_json::to_string(&body) {
        Ok(body) => json_response(status, body),
        Err(_) => empty_response(status),
    }
}

pub(crate) fn access_denied(route: Route) -> Response {
    let stack = format!(
        "   at ASC.Core.Security.Authorizing.PermissionResolver.DemandAsync(ISubject subject, IAction action)\n   at ASC.Web.Api.Controllers.{}.{}",
        route.controller(),
        route.method_name()
    );
    error_response(
        StatusCode::FORBIDDEN,
        "Access denied",
        Some("ASC.Common.Security.Authorizing.AuthorizingException"),
        Some(&stack),
        -2_146_233_088,
    )
}

pub(crate) fn payment_required(route: Route) -> Response {
    let stack = format!(
        "   at ASC.Web.Api.Controllers.SecurityController.DemandBaseAuditPermission()\n   at ASC.Web.Api.Controllers.SecurityController.{}",
        route.method_name()
    );
    error_response(
        StatusCode::PAYMENT_REQUIRED,
        "Your pricing plan does not support this option",
        Some("ASC.Core.Billing.BillingException"),
        Some(&stack),
        -2_146_233_088,
    )
}

/// The innermost frames of an injected 500.
pub(crate) const LOGIN_REPOSITORY_FRAMES: &str = "   at ASC.AuditTrail.Repositories.LoginEventsRepository.GetByFilterAsync(Guid userId, MessageAction action, Nullable`1 fromDate, Nullable`1 to, Int32 startIndex, Int32 limit)";

/// The innermost frames of the 500 of a login row with a NULL ip (§14.4).
pub(crate) const NULL_IP_FRAMES: &str = "   at ASC.AuditTrail.Models.Mappings.EventTypeConverter.Convert(LoginEventQuery source, LoginEvent dest, Boolean limitedActionText)\n   at ASC.AuditTrail.Repositories.LoginEventsRepository.GetByFilterAsync(Nullable`1 login, Nullable`1 action, Nullable`1 fromDate, Nullable`1 to, Int32 startIndex, Int32 limit, Boolean limitedActionText)";

/// The innermost frames of the 500 of an audit row whose action no mapper knows (§14.5).
pub(crate) const UNMAPPED_ACTION_FRAMES: &str = "   at ASC.Web.Api.ApiModel.ResponseDto.AuditEventDto..ctor(AuditEvent auditEvent, AuditActionMapper auditActionMapper, ApiDateTimeHelper apiDateTimeHelper)";

/// A 500 `System.NullReferenceException` envelope, its stack `frames` then the action of `route`.
pub(crate) fn null_reference(frames: &str, route: Route) -> Response {
    let stack = format!(
        "{frames}\n   at ASC.Web.Api.Controllers.{}.{}",
        route.controller(),
        route.method_name()
    );
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Object reference not set to an instance of an object.",
        Some("System.NullReferenceException"),
        Some(&stack),
        -2_147_467_261,
    )
}

pub(crate) fn server_error(status: StatusCode, route: Route) -> Response {
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        null_reference(LOGIN_REPOSITORY_FRAMES, route)
    } else {
        // CustomHttpException-style: no stack, type and stack written as null.
        error_response(
            status,
            status.canonical_reason().unwrap_or("Error"),
            None,
            None,
            0,
        )
    }
}

pub(crate) fn bad_gateway_html() -> Response {
    let body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

pub(crate) fn malformed() -> Response {
    json_response(
        StatusCode::OK,
        "<!DOCTYPE html><html><head><title>ONLYOFFICE DocSpace</title></head><body>Loading\u{2026}</body></html>"
            .to_owned(),
    )
}

/// Cuts a success body in the middle of its `response` array.
pub(crate) fn truncate_body(body: String) -> String {
    let start = body
        .find("\"response\":[")
        .map_or(0, |i| i + "\"response\":[".len());
    let end = body.rfind("],\"count\"").unwrap_or(body.len());
    let mut cut = if end > start {
        start + (end - start) / 2
    } else {
        start
    };
    while cut > 0 && !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body[..cut].to_owned()
}
