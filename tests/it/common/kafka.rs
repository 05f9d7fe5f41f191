//! How the Kafka tests reach the broker `scripts/kafka.sh` starts: fail at once, saying how to
//! start it, rather than wait out librdkafka's timeouts.

use std::net::ToSocketAddrs;
use std::time::Duration;

use entitywatch::bus::kafka::KafkaSettings;

pub fn brokers() -> String {
    std::env::var("ENTITYWATCH_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Settings for a reachable broker, or a failure telling how to start one.
pub fn kafka_settings() -> KafkaSettings {
    let brokers = brokers();
    for broker in brokers.split(',') {
        let reachable = broker
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .is_some_and(|addr| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
            });
        assert!(
            reachable,
            "no Kafka broker at {broker}: run `scripts/kafka.sh start` (or point \
             ENTITYWATCH_TEST_KAFKA_BROKERS at a broker) before this test"
        );
    }
    // A test should fail in seconds, not in librdkafka's minutes.
    KafkaSettings::new(brokers)
        .with("message.timeout.ms", "20000")
        .with("client.id", "entitywatch-test")
}
