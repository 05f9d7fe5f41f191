//! CloudEvents 1.0 (structured JSON mode) envelope of change events: the wire contract of the
//! `entitywatch.entity-changes.v1` topic that enterprises integrate against.
//!
//! The watcher wraps each [`ChangeEvent`] with [`to_cloud_event`] before it goes to Kafka; the
//! worker unwraps with [`from_cloud_event`] and dead-letters what does not decode, by reason.
//! The shapes are pinned by the JSON Schemas in `schemas/` (tested against generated events).
//!
//! This module must never do I/O, and must never change what an existing `type` or schema
//! version means: a consumer written against `entity-change.v1.json` keeps working forever, so
//! an incompatible change is a new schema version (and a new topic), not an edit.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::events::{ChangeAction, ChangeEvent, DocumentEvent, DocumentStage, EntityChange};

pub const SPEC_VERSION: &str = "1.0";
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// The Kafka `content-type` header of a structured-mode CloudEvent (CloudEvents Kafka binding).
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

pub const TYPE_ENTITY_ADDED: &str = "entitywatch.entity.added";
pub const TYPE_ENTITY_REVISED: &str = "entitywatch.entity.revised";
pub const TYPE_ENTITY_REMOVED: &str = "entitywatch.entity.removed";
pub const TYPE_DOCUMENT_PUBLISHED: &str = "entitywatch.document.published";
pub const TYPE_DOCUMENT_PUBLIC_INSPECTION: &str = "entitywatch.document.public_inspection";

/// Where the schemas in `schemas/` are published; `dataschema` points below it.
pub const SCHEMA_BASE: &str = "https://github.com/entitywatch/entitywatch/schemas/";
pub const ENTITY_CHANGE_SCHEMA: &str =
    "https://github.com/entitywatch/entitywatch/schemas/entity-change.v1.json";
pub const DOCUMENT_EVENT_SCHEMA: &str =
    "https://github.com/entitywatch/entitywatch/schemas/document-event.v1.json";
pub const ENVELOPE_SCHEMA: &str =
    "https://github.com/entitywatch/entitywatch/schemas/cloudevent-envelope.v1.json";

/// The event source when a change has no Federal Register document number to point at.
pub const WATCHER_SOURCE: &str = "urn:entitywatch:watcher";

/// The data schema versions this build understands, by schema name.
const ENTITY_CHANGE_NAME: &str = "entity-change";
const DOCUMENT_EVENT_NAME: &str = "document-event";
const KNOWN_VERSION: u32 = 1;

/// One CloudEvent in structured JSON mode. Extension attributes other producers may add are
/// ignored on decode, as the CloudEvents spec asks of consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    /// Hex SHA-256 of what the event says (see [`event_id`]): a re-publish has the same id.
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    pub data: Value,
}

impl CloudEvent {
    /// The JSON bytes of the event as they go on the wire.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// Why a message could not be turned back into a [`ChangeEvent`]. Each variant is a distinct
/// dead-letter reason: the worker must not retry any of them, since retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("not a CloudEvent in structured JSON mode: {0}")]
    InvalidEnvelope(#[source] serde_json::Error),
    #[error("unsupported CloudEvents specversion {0:?} (only 1.0 is understood)")]
    UnsupportedSpecVersion(String),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error(
        "unknown data schema {dataschema:?} for event type {ty:?} (this build understands v1)"
    )]
    UnknownSchemaVersion { ty: String, dataschema: String },
    #[error("data of a {ty} event does not match its schema: {source}")]
    InvalidData {
        ty: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("event type {ty} contradicts its data: {detail}")]
    Inconsistent { ty: String, detail: String },
}

impl DecodeError {
    /// A short, stable reason code for dead-letter headers and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::InvalidEnvelope(_) => "invalid_envelope",
            DecodeError::UnsupportedSpecVersion(_) => "unsupported_specversion",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::UnknownSchemaVersion { .. } => "unknown_schema_version",
            DecodeError::InvalidData { .. } => "invalid_data",
            DecodeError::Inconsistent { .. } => "inconsistent",
        }
    }
}

/// The CloudEvents `type` of a change event.
pub fn event_type(event: &ChangeEvent) -> &'static str {
    match event {
        ChangeEvent::Entity(c) => match c.action {
            ChangeAction::Added => TYPE_ENTITY_ADDED,
            ChangeAction::Revised => TYPE_ENTITY_REVISED,
            ChangeAction::Removed => TYPE_ENTITY_REMOVED,
        },
        ChangeEvent::Document(d) => match d.stage {
            DocumentStage::Published => TYPE_DOCUMENT_PUBLISHED,
            DocumentStage::PublicInspection => TYPE_DOCUMENT_PUBLIC_INSPECTION,
        },
    }
}

/// Wraps a change event. `time` is the document's publication date (midnight UTC: the Federal
/// Register gives a day, not a time) or, for a document not yet published, now.
pub fn to_cloud_event(event: &ChangeEvent) -> CloudEvent {
    let (data, schema, subject) = match event {
        ChangeEvent::Entity(c) => (
            to_value(c),
            ENTITY_CHANGE_SCHEMA,
            c.entity_key.as_str().to_string(),
        ),
        ChangeEvent::Document(d) => (
            to_value(d),
            DOCUMENT_EVENT_SCHEMA,
            d.source.document_number.clone(),
        ),
    };
    let source_doc = match event {
        ChangeEvent::Entity(c) => &c.source,
        ChangeEvent::Document(d) => &d.source,
    };
    let source = if source_doc.document_number.trim().is_empty() {
        WATCHER_SOURCE.to_string()
    } else {
        format!(
            "https://www.federalregister.gov/d/{}",
            source_doc.document_number
        )
    };
    let time = source_doc
        .publication_date
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        .unwrap_or_else(Utc::now);
    CloudEvent {
        specversion: SPEC_VERSION.to_string(),
        id: id_of(event, &data),
        source,
        ty: event_type(event).to_string(),
        subject: Some(subject),
        time: Some(time),
        datacontenttype: Some(DATA_CONTENT_TYPE.to_string()),
        dataschema: Some(schema.to_string()),
        data,
    }
}

/// The deterministic id of an event: hex SHA-256 over the document number, the partition key,
/// the action (or document stage) and a hash of the canonical JSON of the data. The same event
/// published twice (a retry, a replayed document) has the same id; a revision that changes any
/// field of the entry gets a new one.
pub fn event_id(event: &ChangeEvent) -> String {
    let data = match event {
        ChangeEvent::Entity(c) => to_value(c),
        ChangeEvent::Document(d) => to_value(d),
    };
    id_of(event, &data)
}

fn id_of(event: &ChangeEvent, data: &Value) -> String {
    let action = match event {
        ChangeEvent::Entity(c) => c.action.as_str(),
        ChangeEvent::Document(d) => match d.stage {
            DocumentStage::Published => "published",
            DocumentStage::PublicInspection => "public_inspection",
        },
    };
    let mut canonical = Vec::new();
    write_canonical(data, &mut canonical);
    let data_hash = Sha256::digest(&canonical);
    let mut h = Sha256::new();
    // NUL separators: no field can contain one, so distinct field tuples never collide.
    for part in [event.document_number(), &event.key(), action] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.update(data_hash);
    hex::encode(h.finalize())
}

/// JSON with object keys sorted at every level, so the id does not depend on field order in the
/// Rust structs or on serde_json's map flavour (`preserve_order` may be on in the build graph).
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Serialising a scalar Value into a Vec cannot fail.
    serde_json::to_writer(&mut *out, value).expect("a JSON scalar serialises");
}

fn to_value<T: Serialize>(data: &T) -> Value {
    // EntityChange and DocumentEvent have only string-keyed fields: conversion cannot fail.
    serde_json::to_value(data).expect("event data converts to JSON")
}

/// Unwraps a message from the entity-changes topic.
///
/// `dataschema` may be absent (it is optional in CloudEvents) and then means v1; when present,
/// its last path segment must be `entity-change.v1.json` or `document-event.v1.json` matching
/// the type, so a v2 event reaching a v1 worker is refused rather than half-understood.
pub fn from_cloud_event(bytes: &[u8]) -> Result<ChangeEvent, DecodeError> {
    let value: Value = serde_json::from_slice(bytes).map_err(DecodeError::InvalidJson)?;
    let ce: CloudEvent = serde_json::from_value(value).map_err(DecodeError::InvalidEnvelope)?;
    if ce.specversion != SPEC_VERSION {
        return Err(DecodeError::UnsupportedSpecVersion(ce.specversion));
    }
    let expected_schema = match ce.ty.as_str() {
        TYPE_ENTITY_ADDED | TYPE_ENTITY_REVISED | TYPE_ENTITY_REMOVED => ENTITY_CHANGE_NAME,
        TYPE_DOCUMENT_PUBLISHED | TYPE_DOCUMENT_PUBLIC_INSPECTION => DOCUMENT_EVENT_NAME,
        _ => return Err(DecodeError::UnknownType(ce.ty)),
    };
    if let Some(dataschema) = &ce.dataschema {
        if schema_name_and_version(dataschema) != Some((expected_schema, KNOWN_VERSION)) {
            return Err(DecodeError::UnknownSchemaVersion {
                ty: ce.ty.clone(),
                dataschema: dataschema.clone(),
            });
        }
    }
    let invalid = |source| DecodeError::InvalidData {
        ty: ce.ty.clone(),
        source,
    };
    let event = if expected_schema == ENTITY_CHANGE_NAME {
        let change: EntityChange = serde_json::from_value(ce.data.clone()).map_err(invalid)?;
        ChangeEvent::Entity(change)
    } else {
        let doc: DocumentEvent = serde_json::from_value(ce.data.clone()).map_err(invalid)?;
        ChangeEvent::Document(doc)
    };
    // The type routes the event; if the data says otherwise, one of them is wrong and acting on
    // either would be a guess.
    if event_type(&event) != ce.ty {
        return Err(DecodeError::Inconsistent {
            detail: format!("the data describes a {} event", event_type(&event)),
            ty: ce.ty,
        });
    }
    Ok(event)
}

/// Decodes a message of the change topic, whichever build wrote it: a CloudEvent, or the
/// `{schema_version, key, ...}` envelope that the embedded bus carried before it carried
/// CloudEvents (such records may still sit, unconsumed, in an upgraded store).
pub fn decode_change_event(bytes: &[u8]) -> Result<ChangeEvent, DecodeError> {
    let value: Value = serde_json::from_slice(bytes).map_err(DecodeError::InvalidJson)?;
    let Some(version) = value
        .get("schema_version")
        .filter(|_| value.get("specversion").is_none())
    else {
        return from_cloud_event(bytes);
    };
    if version.as_u64() != Some(u64::from(crate::events::SCHEMA_VERSION)) {
        return Err(DecodeError::UnknownSchemaVersion {
            ty: "legacy envelope".to_string(),
            dataschema: format!("schema_version {version}"),
        });
    }
    let event: ChangeEvent =
        serde_json::from_value(value).map_err(|source| DecodeError::InvalidData {
            ty: "legacy envelope".to_string(),
            source,
        })?;
    Ok(event)
}

/// `(name, version)` of a schema URI ending in `NAME.vN.json` (absolute or relative).
fn schema_name_and_version(uri: &str) -> Option<(&str, u32)> {
    let last = uri.rsplit('/').next()?;
    let stem = last.strip_suffix(".json")?;
    let (name, version) = stem.rsplit_once(".v")?;
    Some((name, version.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CountryCode, EntityKey, EntityName, SourceDocument};
    use chrono::NaiveDate;
    use serde_json::json;

    fn source() -> SourceDocument {
        SourceDocument {
            document_number: "2019-22210".into(),
            publication_date: NaiveDate::from_ymd_opt(2019, 10, 9),
            effective_date: NaiveDate::from_ymd_opt(2019, 10, 9),
            citation: Some("84 FR 54002".into()),
            title: Some("Addition of Certain Entities to the Entity List".into()),
            html_url: Some("https://www.federalregister.gov/documents/2019/10/09/2019-22210/addition-of-certain-entities-to-the-entity-list".into()),
        }
    }

    fn added() -> ChangeEvent {
        let mut c = EntityChange::new(
            ChangeAction::Added,
            EntityName::parse("Hangzhou Hikvision Digital Technology Co., Ltd.").unwrap(),
            CountryCode::parse("CN").unwrap(),
            "CHINA, PEOPLE'S REPUBLIC OF",
            source(),
        );
        c.addresses = vec!["No. 555 Qianmo Road, Binjiang District, Hangzhou, 310052".into()];
        c.license_requirement = Some("For all items subject to the EAR.".into());
        c.license_policy = Some("Case-by-case review for ECCNs 1A004.c, ...".into());
        c.federal_register_citation = Some("84 FR 54002, 10/9/19.".into());
        ChangeEvent::Entity(c)
    }

    fn renamed() -> ChangeEvent {
        let mut c = EntityChange::new(
            ChangeAction::Revised,
            EntityName::parse("iFlytek Co., Ltd.").unwrap(),
            CountryCode::parse("CN").unwrap(),
            "CHINA, PEOPLE'S REPUBLIC OF",
            source(),
        );
        c.previous_key = Some(EntityKey::parse("CN/iflytek").unwrap());
        c.aliases = vec!["iFlytek".into()];
        ChangeEvent::Entity(c)
    }

    fn document(stage: DocumentStage) -> ChangeEvent {
        let mut s = source();
        if stage == DocumentStage::PublicInspection {
            s.publication_date = None;
        }
        ChangeEvent::Document(DocumentEvent {
            stage,
            source: s,
            amendatory_text: vec!["2. Supplement No. 4 to part 744 is amended ...".into()],
            change_count: 28,
            warnings: vec![],
        })
    }

    fn all_kinds() -> Vec<ChangeEvent> {
        let mut removed = match added() {
            ChangeEvent::Entity(c) => c,
            _ => unreachable!(),
        };
        removed.action = ChangeAction::Removed;
        vec![
            added(),
            renamed(),
            ChangeEvent::Entity(removed),
            document(DocumentStage::Published),
            document(DocumentStage::PublicInspection),
        ]
    }

    #[test]
    fn envelope_carries_the_attributes_consumers_route_on() {
        let ce = to_cloud_event(&added());
        assert_eq!(ce.specversion, "1.0");
        assert_eq!(ce.ty, "entitywatch.entity.added");
        assert_eq!(ce.source, "https://www.federalregister.gov/d/2019-22210");
        assert_eq!(
            ce.subject.as_deref(),
            Some("CN/hangzhou-hikvision-digital-technology-co-ltd")
        );
        assert_eq!(ce.time.unwrap().to_rfc3339(), "2019-10-09T00:00:00+00:00");
        assert_eq!(ce.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(ce.dataschema.as_deref(), Some(ENTITY_CHANGE_SCHEMA));
        assert_eq!(ce.id.len(), 64);
        assert!(ce.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(
            ce.data.get("kind").is_none(),
            "the type says what kind it is"
        );

        let doc = to_cloud_event(&document(DocumentStage::Published));
        assert_eq!(doc.ty, "entitywatch.document.published");
        assert_eq!(doc.subject.as_deref(), Some("2019-22210"));
        assert_eq!(doc.dataschema.as_deref(), Some(DOCUMENT_EVENT_SCHEMA));
        let pi = to_cloud_event(&document(DocumentStage::PublicInspection));
        assert_eq!(pi.ty, "entitywatch.document.public_inspection");
    }

    #[test]
    fn every_kind_round_trips() {
        for event in all_kinds() {
            let bytes = to_cloud_event(&event).to_json_bytes().unwrap();
            assert_eq!(from_cloud_event(&bytes).unwrap(), event);
        }
    }

    #[test]
    fn ids_are_deterministic_and_distinguish_content() {
        let a = to_cloud_event(&added());
        let b = to_cloud_event(&added());
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, event_id(&added()));
        // Re-encoding what a consumer decoded gives the id it received.
        let decoded = from_cloud_event(&a.to_json_bytes().unwrap()).unwrap();
        assert_eq!(event_id(&decoded), a.id);

        let mut changed = match added() {
            ChangeEvent::Entity(c) => c,
            _ => unreachable!(),
        };
        changed.addresses.push("another address".into());
        assert_ne!(event_id(&ChangeEvent::Entity(changed.clone())), a.id);
        changed.addresses.pop();
        changed.action = ChangeAction::Removed;
        assert_ne!(event_id(&ChangeEvent::Entity(changed)), a.id);

        let ids: std::collections::HashSet<_> = all_kinds().iter().map(event_id).collect();
        assert_eq!(ids.len(), all_kinds().len());
    }

    #[test]
    fn unpublished_documents_are_timed_now_and_events_without_number_use_the_watcher_source() {
        let before = Utc::now();
        let ce = to_cloud_event(&document(DocumentStage::PublicInspection));
        assert!(ce.time.unwrap() >= before);
        let mut c = match added() {
            ChangeEvent::Entity(c) => c,
            _ => unreachable!(),
        };
        c.source.document_number = String::new();
        assert_eq!(
            to_cloud_event(&ChangeEvent::Entity(c)).source,
            WATCHER_SOURCE
        );
    }

    fn decode_value(v: &Value) -> Result<ChangeEvent, DecodeError> {
        from_cloud_event(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn undecodable_messages_fail_with_distinct_reasons() {
        let good = serde_json::to_value(to_cloud_event(&added())).unwrap();

        assert_eq!(
            from_cloud_event(b"{not json").unwrap_err().reason(),
            "invalid_json"
        );
        assert_eq!(
            decode_value(&json!({"specversion": "1.0"}))
                .unwrap_err()
                .reason(),
            "invalid_envelope"
        );

        let mut v = good.clone();
        v["specversion"] = json!("0.3");
        assert_eq!(
            decode_value(&v).unwrap_err().reason(),
            "unsupported_specversion"
        );

        let mut v = good.clone();
        v["type"] = json!("entitywatch.entity.teleported");
        assert!(matches!(
            decode_value(&v).unwrap_err(),
            DecodeError::UnknownType(t) if t == "entitywatch.entity.teleported"
        ));

        let mut v = good.clone();
        v["dataschema"] =
            json!("https://github.com/entitywatch/entitywatch/schemas/entity-change.v2.json");
        assert_eq!(
            decode_value(&v).unwrap_err().reason(),
            "unknown_schema_version"
        );
        let mut v = good.clone();
        v["dataschema"] = json!(DOCUMENT_EVENT_SCHEMA);
        assert_eq!(
            decode_value(&v).unwrap_err().reason(),
            "unknown_schema_version"
        );

        let mut v = good.clone();
        v["data"]["entity_key"] = json!("not a key");
        assert_eq!(decode_value(&v).unwrap_err().reason(), "invalid_data");

        let mut v = good.clone();
        v["type"] = json!(TYPE_ENTITY_REMOVED);
        assert_eq!(decode_value(&v).unwrap_err().reason(), "inconsistent");
    }

    #[test]
    fn relative_or_absent_dataschema_means_v1_and_extensions_are_ignored() {
        let mut v = serde_json::to_value(to_cloud_event(&added())).unwrap();
        v["dataschema"] = json!("schemas/entity-change.v1.json");
        v["traceparent"] = json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        assert_eq!(decode_value(&v).unwrap(), added());
        v.as_object_mut().unwrap().remove("dataschema");
        assert_eq!(decode_value(&v).unwrap(), added());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut out = Vec::new();
        write_canonical(&json!({"b": [{"z": 1, "a": "x\"y"}], "a": null}), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":null,"b":[{"a":"x\"y","z":1}]}"#
        );
    }

    mod schemas {
        use super::*;

        const ENTITY: &str = include_str!("../../schemas/entity-change.v1.json");
        const DOCUMENT: &str = include_str!("../../schemas/document-event.v1.json");
        const ENVELOPE: &str = include_str!("../../schemas/cloudevent-envelope.v1.json");

        fn parsed(s: &str) -> Value {
            serde_json::from_str(s).expect("schema is JSON")
        }

        /// Validators for envelope, entity change and document event, with every schema
        /// resolvable offline by its `$id` (no HTTP retriever is compiled in).
        fn with_validators<R>(f: impl FnOnce(&[jsonschema::Validator; 3], &[Value; 3]) -> R) -> R {
            let schemas = [parsed(ENVELOPE), parsed(ENTITY), parsed(DOCUMENT)];
            for s in &schemas {
                jsonschema::meta::validate(s).expect("schema is valid draft 2020-12");
                assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
            }
            let registry = jsonschema::Registry::new()
                .add(ENTITY_CHANGE_SCHEMA, schemas[1].clone())
                .unwrap()
                .add(DOCUMENT_EVENT_SCHEMA, schemas[2].clone())
                .unwrap()
                .prepare()
                .unwrap();
            let build = |s: &Value| {
                jsonschema::options()
                    .with_registry(&registry)
                    .should_validate_formats(true)
                    .build(s)
                    .unwrap_or_else(|e| panic!("{} compiles: {e}", s["$id"]))
            };
            let validators = [build(&schemas[0]), build(&schemas[1]), build(&schemas[2])];
            f(&validators, &schemas)
        }

        fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
            validator
                .iter_errors(instance)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect()
        }

        #[test]
        fn schema_ids_match_the_dataschema_uris() {
            assert_eq!(parsed(ENTITY)["$id"], ENTITY_CHANGE_SCHEMA);
            assert_eq!(parsed(DOCUMENT)["$id"], DOCUMENT_EVENT_SCHEMA);
            assert_eq!(parsed(ENVELOPE)["$id"], ENVELOPE_SCHEMA);
            assert!(ENTITY_CHANGE_SCHEMA.starts_with(SCHEMA_BASE));
        }

        #[test]
        fn generated_events_validate() {
            with_validators(|[validator, ..], _| {
                for event in all_kinds() {
                    let v = serde_json::to_value(to_cloud_event(&event)).unwrap();
                    let errs = errors(validator, &v);
                    assert!(errs.is_empty(), "{event:?}: {errs:#?}");
                }
            });
        }

        #[test]
        fn schema_examples_validate_and_decode() {
            with_validators(|[validator, entity, document], schemas| {
                let examples = schemas[0]["examples"]
                    .as_array()
                    .expect("envelope examples");
                assert!(!examples.is_empty());
                for ex in examples {
                    let errs = errors(validator, ex);
                    assert!(errs.is_empty(), "{ex}: {errs:#?}");
                    let event = decode_value(ex).expect("example decodes");
                    // The example ids are real: what this build would compute.
                    assert_eq!(ex["id"], event_id(&event), "{ex}");
                }
                for (v, schema) in [(entity, &schemas[1]), (document, &schemas[2])] {
                    for ex in schema["examples"].as_array().expect("data examples") {
                        let errs = errors(v, ex);
                        assert!(errs.is_empty(), "{}: {ex}: {errs:#?}", schema["$id"]);
                    }
                }
            });
        }

        #[test]
        fn schemas_reject_what_the_decoder_rejects() {
            with_validators(|[validator, ..], _| {
                let good = serde_json::to_value(to_cloud_event(&added())).unwrap();
                let mut bad = Vec::new();
                let mut v = good.clone();
                v["type"] = json!(TYPE_ENTITY_REMOVED);
                bad.push(("type contradicts data.action", v));
                let mut v = good.clone();
                v["data"]["entity_key"] = json!("cn/lowercase-country");
                bad.push(("malformed key", v));
                let mut v = good.clone();
                v.as_object_mut().unwrap().remove("id");
                bad.push(("no id", v));
                let mut v = good.clone();
                v["dataschema"] = json!(DOCUMENT_EVENT_SCHEMA);
                bad.push(("wrong schema for type", v));
                let mut v = good.clone();
                v["type"] = json!("entitywatch.entity.teleported");
                bad.push(("unknown type", v));
                let mut v =
                    serde_json::to_value(to_cloud_event(&document(DocumentStage::Published)))
                        .unwrap();
                v["data"]["change_count"] = json!(-1);
                bad.push(("negative change count", v));
                for (why, v) in bad {
                    assert!(!validator.is_valid(&v), "schema accepted: {why}");
                    assert!(decode_value(&v).is_err(), "decoder accepted: {why}");
                }
            });
        }
    }
}
