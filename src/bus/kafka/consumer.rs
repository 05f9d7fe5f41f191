//! Consuming: the worker's group member [`KafkaConsumer`], and reading a whole topic without a
//! group (`dead-letters list`). Offsets are stored only by the caller, after handling.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::Offset;

use super::{KafkaBusError, KafkaSettings};

/// A message as the consumer hands it over: owned, so it can move to a blocking task (matching
/// runs off the async threads) while the consumer keeps fetching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch, as the producer or broker stamped it.
    pub timestamp_ms: Option<i64>,
}

impl ReceivedMessage {
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A committed offset of the group: the next offset it will read, `None` if nothing committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// See [`KafkaConsumer::lag`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
}

/// A consumer-group member for the worker.
///
/// Offset policy (at-least-once, chosen over manual synchronous commits): librdkafka commits
/// in the background (`enable.auto.commit=true`), but only offsets the application stored with
/// [`KafkaConsumer::store`] (`enable.auto.offset.store=false`). The worker stores a message's
/// offset once its decisions and alerts are durable, so a crash replays at most the messages
/// since the last background commit — harmless, since alerts are de-duplicated by the store —
/// and never skips one. Background commit also covers rebalances: librdkafka commits stored
/// offsets before a partition is revoked. [`KafkaConsumer::commit`] forces a synchronous commit
/// (shutdown, tests).
///
/// Order: messages of one partition arrive in offset order. Storing offset N means "everything
/// up to N is done", so a worker that processes a partition's messages concurrently must store
/// them in order. [`KafkaConsumer::recv`] must be called at least every `max.poll.interval.ms`
/// (5 minutes by default) or the member is evicted from the group.
///
/// A fresh group starts at the earliest offset (`auto.offset.reset=earliest`): a new worker
/// must see the whole list history.
pub struct KafkaConsumer {
    // Arc: blocking calls (commit, committed, close) run on the blocking pool with a clone.
    inner: Arc<StreamConsumer>,
    group_id: String,
}

impl fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    /// Joins `group_id` and subscribes to `topics` (which must exist: see [`ensure_topics`]).
    pub fn subscribe(
        settings: &KafkaSettings,
        group_id: &str,
        topics: &[&str],
    ) -> Result<Self, KafkaBusError> {
        let inner: StreamConsumer = settings
            .client_config(
                &[
                    ("auto.offset.reset", "earliest"),
                    ("enable.partition.eof", "false"),
                ],
                &[
                    ("group.id", group_id),
                    ("enable.auto.commit", "true"),
                    ("enable.auto.offset.store", "false"),
                ],
            )?
            .create()
            .map_err(|e| settings.client_error("consumer", e))?;
        inner
            .subscribe(topics)
            .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
        Ok(KafkaConsumer {
            inner: Arc::new(inner),
            group_id: group_id.to_string(),
        })
    }

    /// For each assigned partition, how many messages lie beyond this consumer's position
    /// (high watermark minus the next offset to fetch). Partitions with no position yet are
    /// left out. Asks the brokers for the watermarks, so call it every few seconds, not per
    /// message.
    pub async fn lag(&self, timeout: Duration) -> Result<Vec<PartitionLag>, KafkaBusError> {
        use rdkafka::consumer::Consumer;
        use rdkafka::Offset;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let positions = inner
                .position()
                .map_err(|e| KafkaBusError::Cluster(Box::new(e)))?;
            let mut out = Vec::new();
            for element in positions.elements() {
                let Offset::Offset(position) = element.offset() else {
                    continue;
                };
                let (_, high) = inner
                    .fetch_watermarks(element.topic(), element.partition(), timeout)
                    .map_err(|e| KafkaBusError::Cluster(Box::new(e)))?;
                out.push(PartitionLag {
                    topic: element.topic().to_string(),
                    partition: element.partition(),
                    lag: (high - position).max(0),
                });
            }
            Ok(out)
        })
        .await?
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The next message of any assigned partition. An error is usually transient (broker
    /// unreachable, rebalance in progress) and librdkafka recovers by itself: log it and call
    /// again rather than stop the worker.
    pub async fn recv(&self) -> Result<ReceivedMessage, KafkaBusError> {
        let m = self
            .inner
            .recv()
            .await
            .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ReceivedMessage {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        })
    }

    /// Every message on `topic` at the time of the call, from each partition's start, read by
    /// assignment without joining a group and without committing anything: for looking at a
    /// topic such as the dead letters. Fails after `timeout`.
    pub async fn read_topic(
        settings: &KafkaSettings,
        topic: &str,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMessage>, KafkaBusError> {
        use rdkafka::consumer::Consumer;
        use rdkafka::{Offset, TopicPartitionList};
        let inner: StreamConsumer = settings
            .client_config(
                &[("enable.partition.eof", "false")],
                &[
                    ("group.id", "entitywatch-topic-reader"),
                    ("enable.auto.commit", "false"),
                    ("enable.auto.offset.store", "false"),
                ],
            )?
            .create()
            .map_err(|e| settings.client_error("consumer", e))?;
        let inner = Arc::new(inner);
        let reader = Arc::clone(&inner);
        let name = topic.to_string();
        let ends = tokio::task::spawn_blocking(move || {
            let metadata = reader
                .fetch_metadata(Some(&name), timeout)
                .map_err(|e| KafkaBusError::Cluster(Box::new(e)))?;
            let mut assignment = TopicPartitionList::new();
            let mut ends = BTreeMap::new();
            for t in metadata.topics() {
                for p in t.partitions() {
                    let (low, high) = reader
                        .fetch_watermarks(&name, p.id(), timeout)
                        .map_err(|e| KafkaBusError::Cluster(Box::new(e)))?;
                    if high > low {
                        assignment
                            .add_partition_offset(&name, p.id(), Offset::Offset(low))
                            .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
                        ends.insert(p.id(), high);
                    }
                }
            }
            reader
                .assign(&assignment)
                .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
            Ok::<_, KafkaBusError>(ends)
        })
        .await??;
        let consumer = KafkaConsumer {
            inner,
            group_id: "entitywatch-topic-reader".to_string(),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pending = ends;
        let mut out = Vec::new();
        while !pending.is_empty() {
            let m = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .map_err(|_| {
                    KafkaBusError::Config(format!(
                        "reading {topic}: partitions {:?} not read to the end within {} s",
                        pending.keys().collect::<Vec<_>>(),
                        timeout.as_secs()
                    ))
                })??;
            if pending
                .get(&m.partition)
                .is_some_and(|end| m.offset + 1 >= *end)
            {
                pending.remove(&m.partition);
            }
            out.push(m);
        }
        Ok(out)
    }

    /// Marks `message` processed: the group's next commit will resume after it.
    pub fn store(&self, message: &ReceivedMessage) -> Result<(), KafkaBusError> {
        self.store_offset(&message.topic, message.partition, message.offset)
    }

    /// Marks the message at `offset` of `topic`/`partition` processed.
    pub fn store_offset(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), KafkaBusError> {
        // rd_kafka_offset_store stores offset + 1, the next offset to read.
        self.inner
            .store_offset(topic, partition, offset)
            .map_err(|source| KafkaBusError::StoreOffset {
                topic: topic.to_string(),
                partition,
                offset,
                source: Box::new(source),
            })
    }

    /// Commits the stored offsets now and waits for the broker. Nothing stored is not an error.
    pub async fn commit(&self) -> Result<(), KafkaBusError> {
        let inner = Arc::clone(&self.inner);
        let result =
            tokio::task::spawn_blocking(move || inner.commit_consumer_state(CommitMode::Sync))
                .await?;
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(source) => Err(KafkaBusError::Commit {
                group: self.group_id.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// The group's committed offsets for the current assignment.
    pub async fn committed(
        &self,
        timeout: Duration,
    ) -> Result<Vec<CommittedOffset>, KafkaBusError> {
        let inner = Arc::clone(&self.inner);
        let group = self.group_id.clone();
        tokio::task::spawn_blocking(move || {
            // The TopicPartitionList is converted and dropped here, never handed out: dropping a
            // consumer while such a list was alive has been seen to hang.
            let tpl = inner
                .committed(timeout)
                .map_err(|source| KafkaBusError::Commit {
                    group,
                    source: Box::new(source),
                })?;
            let offsets = tpl
                .elements()
                .iter()
                .map(|e| CommittedOffset {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    offset: match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    },
                })
                .collect();
            drop(tpl);
            Ok(offsets)
        })
        .await?
    }

    /// The partitions currently assigned to this member. The assignment changes only while
    /// [`KafkaConsumer::recv`] is being polled (rebalances are served from the same queue).
    pub fn assignment(&self) -> Result<Vec<(String, i32)>, KafkaBusError> {
        let tpl = self
            .inner
            .assignment()
            .map_err(|e| KafkaBusError::Receive(Box::new(e)))?;
        // Converted and dropped at once, like the committed offsets.
        let parts = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        drop(tpl);
        Ok(parts)
    }

    /// Leaves the group, committing stored offsets first. Dropping the consumer does the same
    /// but blocks the calling thread until the group is left; this runs it on the blocking pool.
    pub async fn close(self) -> Result<(), KafkaBusError> {
        let committed = self.commit().await;
        // Leave the group even if the commit failed: dropping here would block an async thread.
        let inner = self.inner;
        tokio::task::spawn_blocking(move || {
            inner.unsubscribe();
            drop(inner);
        })
        .await?;
        committed
    }
}
