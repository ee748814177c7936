//! JSON parsed on the host for a guest, charged to the execution's memory budget node by node.
//!
//! A guest hands the host JSON text (a report's data, a message's data, an event's payload) of
//! up to its whole memory, and the parsed tree can take many times the text's size (`[1,1,1…]`
//! is 2 bytes of text and 32 bytes of tree per element). Parsing with [`parse_json`] charges
//! each node as it is built and stops at the first one over the budget, so the tree never gets
//! bigger than the cap allows.

use crate::runtime::Reservation;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Bytes charged per node on top of its text: the `Value` itself.
const NODE: usize = std::mem::size_of::<Value>();
/// Bytes charged per object entry on top of its key's text: the key's `String` and the map's
/// share of a node.
const ENTRY: usize = std::mem::size_of::<String>() + 2 * std::mem::size_of::<usize>();

/// Why [`parse_json`] failed.
#[derive(Debug)]
pub enum ParseError {
    /// The text is not JSON.
    Invalid(serde_json::Error),
    /// The tree went over the budget ([`crate::runtime::MemoryBudget::exceeded`] says why).
    Exceeded(String),
}

/// Parses `text`, charging the tree to `held` as `what`; the charge stays in `held`.
pub fn parse_json(text: &str, held: &mut Reservation, what: &str) -> Result<Value, ParseError> {
    let mut exceeded = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Charged {
        held,
        what,
        exceeded: &mut exceeded,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match (parsed, exceeded) {
        (_, Some(why)) => Err(ParseError::Exceeded(why)),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(ParseError::Invalid(e)),
    }
}

struct Charged<'a> {
    held: &'a mut Reservation,
    what: &'a str,
    exceeded: &'a mut Option<String>,
}

impl Charged<'_> {
    fn charge<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        self.held.grow(bytes, self.what).map_err(|e| {
            let error = E::custom(&e.0);
            *self.exceeded = Some(e.0);
            error
        })
    }

    fn nested(&mut self) -> Charged<'_> {
        Charged {
            held: &mut *self.held,
            what: self.what,
            exceeded: &mut *self.exceeded,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Charged<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Charged<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.charge(NODE + v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Value, E> {
        self.charge(NODE + v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(NODE)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.charge(NODE)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.charge(ENTRY + key.len())?;
            let value = map.next_value_seed(self.nested())?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::MemoryBudget;

    #[test]
    fn the_tree_is_charged_and_stopped_at_the_cap() {
        let budget = MemoryBudget::new(1 << 20);
        let mut held = budget.reserve(0, "test").unwrap();
        let value = parse_json(r#"{"a": [1, 2.5, "x"], "b": null}"#, &mut held, "test").unwrap();
        assert_eq!(value, serde_json::json!({"a": [1, 2.5, "x"], "b": null}));
        assert!(held.bytes() >= 6 * NODE + 2 * ENTRY + 3, "{}", held.bytes());
        assert!(matches!(
            parse_json("[1,", &mut held, "test"),
            Err(ParseError::Invalid(_))
        ));
        // 2 bytes of text per element, 32 of tree: a 64 KiB text cannot make a 1 MiB tree.
        let ones = format!("[{}1]", "1,".repeat(40_000));
        match parse_json(&ones, &mut held, "`report.render` summary") {
            Err(ParseError::Exceeded(why)) => {
                assert!(why.starts_with("host-side buffers for `report.render` summary"))
            }
            other => panic!("{other:?}"),
        }
        assert!(budget.exceeded().is_some());
    }
}
