//! Signature verification throughput: envelope parsing, RSA verification with
//! an already parsed certificate (SignatureVersion 1 and 2), and the whole
//! `Verifier::verify` pipeline with the certificate served from the cache.
//!
//! `cargo bench -p ses-webhook-sns-verify --features test-util --bench verify`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sns_verify::testing::TestSigner;
use sns_verify::{
    CertificateStore, Envelope, SignatureVersion, TrustPolicy, Verifier, verify_with_cert,
};

const ARN: &str = "arn:aws:sns:eu-west-1:123456789012:ses-events";

/// A realistic SES event-publishing Delivery record (about 1.6 KB).
fn ses_delivery() -> String {
    serde_json::json!({
        "eventType": "Delivery",
        "mail": {
            "timestamp": "2026-11-27T11:59:58.123Z",
            "source": "Example Sender <sender@example.com>",
            "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.com",
            "sendingAccountId": "123456789012",
            "messageId": "0102019abcdef012-3456789a-bcde-f012-3456-789abcdef012-000000",
            "destination": ["recipient@example.org"],
            "headersTruncated": false,
            "headers": [
                {"name": "From", "value": "Example Sender <sender@example.com>"},
                {"name": "To", "value": "recipient@example.org"},
                {"name": "Subject", "value": "Your order has shipped"},
                {"name": "MIME-Version", "value": "1.0"},
                {"name": "Content-Type", "value": "multipart/alternative; boundary=\"----=_Part_1\""}
            ],
            "commonHeaders": {
                "from": ["Example Sender <sender@example.com>"],
                "to": ["recipient@example.org"],
                "messageId": "0102019abcdef012-3456789a-bcde-f012-3456-789abcdef012-000000",
                "subject": "Your order has shipped"
            },
            "tags": {
                "ses:configuration-set": ["transactional"],
                "ses:source-ip": ["192.0.2.10"],
                "ses:from-domain": ["example.com"],
                "ses:caller-identity": ["mailer"]
            }
        },
        "delivery": {
            "timestamp": "2026-11-27T11:59:59.456Z",
            "processingTimeMillis": 1333,
            "recipients": ["recipient@example.org"],
            "smtpResponse": "250 2.0.0 OK 1732708799 a1b2c3d4e5f6.123 - gsmtp",
            "reportingMTA": "a8-12.smtp-out.amazonses.com"
        }
    })
    .to_string()
}

fn bodies(signer: &TestSigner) -> [(SignatureVersion, Vec<u8>); 2] {
    let message = ses_delivery();
    [SignatureVersion::V1, SignatureVersion::V2].map(|version| {
        let v = signer.notification(
            ARN,
            "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
            &message,
            Some("Amazon SES Email Event Notification"),
            version,
        );
        (version, v.to_string().into_bytes())
    })
}

fn bench(c: &mut Criterion) {
    let signer = TestSigner::shared();
    let cert = signer.signing_cert();
    let bodies = bodies(signer);

    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse+string_to_sign", |b| {
        b.iter(|| {
            let env = Envelope::parse(black_box(&bodies[1].1)).unwrap();
            black_box(env.string_to_sign())
        });
    });
    group.finish();

    let mut group = c.benchmark_group("verify_with_cert");
    group.throughput(Throughput::Elements(1));
    for (version, body) in &bodies {
        let env = Envelope::parse(body).unwrap();
        group.bench_function(format!("v{}", version.as_str()), |b| {
            b.iter(|| verify_with_cert(black_box(&env), black_box(&cert)).unwrap());
        });
    }
    group.finish();

    let dir = tempfile::tempdir().unwrap();
    signer.write_pinned(dir.path()).unwrap();
    let source = CertificateStore::builder()
        .pinned_dir(Some(dir.path().to_path_buf()))
        .fetch(false)
        .build();
    let verifier = Verifier::new(TrustPolicy::amazon(), source);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("verifier_verify_cached");
    group.throughput(Throughput::Elements(1));
    for (version, body) in &bodies {
        group.bench_function(format!("v{}", version.as_str()), |b| {
            b.to_async(&runtime)
                .iter(|| async { verifier.verify(black_box(body)).await.unwrap() });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
