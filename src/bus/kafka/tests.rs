use super::*;
use crate::bus::{PublishError, Publisher};
use crate::events::ChangeEvent;

#[test]
fn debug_output_redacts_credentials() {
    let s = KafkaSettings::new("broker:9093")
        .with("security.protocol", "SASL_SSL")
        .with("sasl.mechanism", "SCRAM-SHA-512")
        .with("sasl.username", "watcher")
        .with("sasl.password", "hunter2")
        .with("ssl.key.password", "pem-pass")
        .with("sasl.oauthbearer.client.secret", "oauth-secret");
    let shown = format!("{s:?} {:?}", s.redacted_extra());
    for secret in ["hunter2", "pem-pass", "oauth-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        shown.contains("SCRAM-SHA-512") && shown.contains("watcher"),
        "{shown}"
    );
    // librdkafka quotes a refused property's value in its error (this build refuses the
    // OIDC secret: no libcurl); that value must not reach our error.
    // A build with OIDC support accepts it; then there is nothing to leak.
    if let Err(e) = KafkaProducer::new(&s) {
        let text = format!("{e} {e:?}");
        assert!(text.contains("sasl.oauthbearer.client.secret"), "{text}");
        assert!(!text.contains("oauth-secret"), "{text}");
    }
    let s = KafkaSettings {
        extra: s
            .extra
            .into_iter()
            .filter(|(k, _)| !k.contains("oauthbearer"))
            .collect(),
        ..s
    };
    let producer = KafkaProducer::new(&s).unwrap();
    let publisher = KafkaPublisher::from_producer(producer, ENTITY_CHANGES_TOPIC);
    assert!(!format!("{publisher:?}").contains("hunter2"));
}

#[test]
fn guarantees_cannot_be_configured_away() {
    let s = KafkaSettings::new("127.0.0.1:1").with("acks", "1");
    let err = KafkaProducer::new(&s).unwrap_err();
    assert!(err.to_string().contains("`acks` must be `all`"), "{err}");
    let s = KafkaSettings::new("127.0.0.1:1").with("enable.auto.offset.store", "true");
    let err = KafkaConsumer::subscribe(&s, "g", &["t"]).unwrap_err();
    assert!(
        err.to_string().contains("enable.auto.offset.store"),
        "{err}"
    );
    // Restating a required value is fine.
    let s = KafkaSettings::new("127.0.0.1:1").with("acks", "all");
    assert!(KafkaProducer::new(&s).is_ok());
}

#[test]
fn default_topics_and_specs() {
    let specs = Topics::default().specs(3, 1);
    let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "entitywatch.entity-changes.v1",
            "entitywatch.alerts.v1",
            "entitywatch.suppliers.v1",
            "entitywatch.dead-letter.v1",
            "entitywatch.ownership.v1"
        ]
    );
    let compacted: Vec<_> = specs.iter().filter(|s| s.is_compacted()).collect();
    assert_eq!(compacted.len(), 2);
    assert_eq!(compacted[0].name, SUPPLIERS_TOPIC);
    assert_eq!(compacted[1].name, OWNERSHIP_TOPIC);
}

/// With no broker the publisher fails within its message timeout, with an error naming the
/// topic and key, instead of returning as if the events were durable.
#[tokio::test]
async fn publish_without_a_broker_fails_clearly() {
    use crate::events::{DocumentEvent, DocumentStage, SourceDocument};
    let s = KafkaSettings::new("127.0.0.1:1")
        .with("message.timeout.ms", "1500")
        .with("sasl.password", "hunter2");
    let publisher = KafkaPublisher::new(&s, "entitywatch.test.unreachable").unwrap();
    let event = ChangeEvent::Document(DocumentEvent {
        stage: DocumentStage::Published,
        source: SourceDocument::from_number("2019-22210"),
        amendatory_text: vec![],
        change_count: 0,
        warnings: vec![],
    });
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        publisher.publish(&[event.clone(), event]),
    )
    .await
    .expect("publish must give up within the message timeout")
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PublishError::Refused(_)), "{text}");
    assert!(text.contains("entitywatch.test.unreachable"), "{text}");
    assert!(text.contains("document/2019-22210"), "{text}");
    assert!(text.contains("2 of 2"), "{text}");
    assert!(!text.contains("hunter2"));
    assert!(started.elapsed() < Duration::from_secs(15));
}
