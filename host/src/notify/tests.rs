//! Delivery tests against local peers: a minimal SMTP sink and a fake Slack webhook, both on
//! loopback, both real TCP.

use super::*;
use std::collections::HashMap;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Accepts one SMTP session and returns (envelope recipients, DATA).
async fn smtp_sink(listener: TcpListener) -> (Vec<String>, String) {
    let (socket, _) = listener.accept().await.unwrap();
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
    let mut recipients = Vec::new();
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap() == 0 {
            break;
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-sink\r\n250 8BITMIME\r\n")
                .await
                .unwrap();
        } else if upper.starts_with("RCPT TO:") {
            recipients.push(line[8..].trim().trim_matches(['<', '>']).to_string());
            write.write_all(b"250 ok\r\n").await.unwrap();
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await.unwrap();
            loop {
                line.clear();
                lines.read_line(&mut line).await.unwrap();
                if line == ".\r\n" {
                    break;
                }
                data.push_str(&line);
            }
            write.write_all(b"250 queued as SINK42\r\n").await.unwrap();
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await.unwrap();
            break;
        } else {
            write.write_all(b"250 ok\r\n").await.unwrap();
        }
    }
    (recipients, data)
}

#[tokio::test]
async fn email_with_a_pdf_attachment_reaches_the_smtp_sink() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = tokio::spawn(smtp_sink(listener));
    let config = SmtpConfig::from_lookup(|k| {
        HashMap::from([
            ("SMTP_HOST", "127.0.0.1".to_string()),
            ("SMTP_PORT", port.to_string()),
        ])
        .get(k)
        .cloned()
    })
    .unwrap()
    .unwrap();
    assert_eq!(
        config.tls,
        Tls::None,
        "a non-standard port defaults to plain text"
    );
    // Real PDFs carry binary bytes (the header comment line), so they travel base64-encoded.
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n fake report".to_vec();
    let reply = send_email(
        &config,
        &Email {
            to: vec!["sales@example.com".into(), "ops@example.com".into()],
            subject: "Daily Report".into(),
            body: "Yesterday: 3 orders".into(),
            attachments: vec![Attachment {
                file_name: "daily-sales-2026-01-11.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: pdf.clone(),
            }],
        },
    )
    .await
    .unwrap();
    assert!(reply.contains("SINK42"), "{reply}");
    let (recipients, data) = sink.await.unwrap();
    assert_eq!(recipients, ["sales@example.com", "ops@example.com"]);
    assert!(data.contains("Subject: Daily Report"), "{data}");
    assert!(data.contains("Yesterday: 3 orders"));
    assert!(
        data.contains("filename=\"daily-sales-2026-01-11.pdf\""),
        "{data}"
    );
    assert!(data.contains("Content-Type: application/pdf"));
    // The attachment travels base64-encoded.
    let encoded = {
        use std::fmt::Write as _;
        // A tiny base64 encoder keeps this test free of another dependency.
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in pdf.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    let _ = out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    assert!(
        data.replace("\r\n", "").contains(&encoded),
        "attachment not found in:\n{data}"
    );
}

#[test]
fn bad_input_is_refused_before_sending() {
    let email = |to: Vec<String>| Email {
        to,
        subject: "s".into(),
        body: "b".into(),
        attachments: vec![],
    };
    assert!(matches!(
        build_message("jobs@localhost", &email(vec![])),
        Err(NotifyError::Build(_))
    ));
    assert!(matches!(
        build_message("jobs@localhost", &email(vec!["not an address".into()])),
        Err(NotifyError::Address(a)) if a == "not an address"
    ));
    let many = (0..=MAX_RECIPIENTS)
        .map(|i| format!("u{i}@example.com"))
        .collect();
    assert!(matches!(
        build_message("jobs@localhost", &email(many)),
        Err(NotifyError::Build(_))
    ));
}

#[test]
fn smtp_configuration_from_the_environment() {
    let cfg = |pairs: &[(&str, &str)]| {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SmtpConfig::from_lookup(move |k| map.get(k).cloned())
    };
    assert_eq!(
        cfg(&[]).unwrap(),
        None,
        "no SMTP_HOST: the outbox holds mail"
    );
    let c = cfg(&[("SMTP_HOST", "smtp.example.com")]).unwrap().unwrap();
    assert_eq!((c.port, c.tls), (587, Tls::StartTls));
    let c = cfg(&[("SMTP_HOST", "smtp.example.com"), ("SMTP_TLS", "tls")])
        .unwrap()
        .unwrap();
    assert_eq!((c.port, c.tls), (465, Tls::Tls));
    let c = cfg(&[
        ("SMTP_HOST", "h"),
        ("SMTP_USERNAME", "u"),
        ("SMTP_PASSWORD", "p"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(c.credentials, Some(("u".into(), "p".into())));
    assert!(cfg(&[("SMTP_HOST", "h"), ("SMTP_TLS", "maybe")]).is_err());
    assert!(cfg(&[("SMTP_HOST", "h"), ("SMTP_PORT", "eighty")]).is_err());
}

/// Accepts one HTTP request, answers with `status`, returns the request's body.
async fn fake_webhook(listener: TcpListener, status: &'static str) -> String {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: 7\r\nconnection: close\r\n\r\nno_such"
                );
                socket.write_all(response.as_bytes()).await.unwrap();
                return body;
            }
        }
        if n == 0 {
            return String::new();
        }
    }
}

#[tokio::test]
async fn slack_messages_reach_the_webhook_and_failures_are_reported() {
    let client = http_client();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SlackConfig {
        webhook_url: format!("http://{}/services/T/B/X", listener.local_addr().unwrap()),
    };
    let hook = tokio::spawn(fake_webhook(listener, "200 OK"));
    post_slack(
        &client,
        &config,
        "#alerts",
        ":warning: 3 products are low on stock",
    )
    .await
    .unwrap();
    let body: serde_json::Value = serde_json::from_str(&hook.await.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"channel": "#alerts", "text": ":warning: 3 products are low on stock"})
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SlackConfig {
        webhook_url: format!("http://{}/hook", listener.local_addr().unwrap()),
    };
    let hook = tokio::spawn(fake_webhook(listener, "404 Not Found"));
    let err = post_slack(&client, &config, "#alerts", "x")
        .await
        .unwrap_err();
    hook.await.unwrap();
    assert!(
        err.to_string().contains("404") && err.to_string().contains("no_such"),
        "{err}"
    );
}
