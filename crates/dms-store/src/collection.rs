//! JSON document collections ([`Collection`]) with secondary indexes.
//!
//! A collection `name` is stored in three tables:
//!
//! - `col/<name>/docs`: `&str` id → JSON document bytes.
//! - `col/<name>/index`: `(&str field, &[u8] encoded value, &str id)` → `()`. One entry per
//!   indexed field per document whose field holds a scalar; see [`crate::encoding`] for the
//!   value encoding. Entries of one field sort by value, then by id.
//! - `col/<name>/fields`: `&str` field → empty: the fields that are indexed.

use std::ops::ControlFlow;

use redb::TableDefinition;
use serde_json::Value;

use crate::encoding::FieldPath;
use crate::error::storage;
use crate::names::CollectionTables;
use crate::query::{Compiled, Test};
use crate::repo::KvDef;
use crate::store::sealed::{Sealed, TableView};
use crate::{Error, Query, Readable, WriteTx};

/// redb table layout of a collection's index.
type IndexDef<'n> = TableDefinition<'n, (&'static str, &'static [u8], &'static str), ()>;

/// A collection of JSON documents keyed by id, from [`crate::Store::collection`].
///
/// Documents are arbitrary [`serde_json::Value`]s. Fields named by [`Collection::ensure_index`]
/// are indexed; [`Collection::find`] uses an index for one condition when it can and filters the
/// rest (see [`Collection::explain`]). All operations take a transaction, so documents and
/// indexes change atomically with whatever else the transaction writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    name: String,
}

/// How [`Collection::find`] evaluates a query.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plan {
    /// Every document is read and filtered, in id order.
    FullScan,
    /// The index of `field` narrows the candidates; the other conditions filter them.
    Index {
        /// The indexed field used.
        field: String,
    },
}

impl Collection {
    pub(crate) fn new(name: &str) -> Collection {
        Collection { name: name.to_owned() }
    }

    /// The collection's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    fn tables(&self) -> Result<CollectionTables, Error> {
        CollectionTables::new(&self.name)
    }

    /// Inserts the document `id`, replacing any previous one, and updates every index.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Encode`], [`Error::Decode`] if the replaced document
    /// is unreadable, [`Error::Storage`].
    pub fn insert(&self, tx: &WriteTx, id: &str, doc: &Value) -> Result<(), Error> {
        let t = self.tables()?;
        let fields = Self::indexed_fields(tx, &t)?;
        let bytes = serde_json::to_vec(doc).map_err(|source| Error::Encode {
            table: self.name.clone(),
            key: id.to_owned(),
            source,
        })?;
        let old = {
            let mut docs = tx.inner.open_table(docs_def(&t)).map_err(storage)?;
            let previous = docs.insert(id, bytes.as_slice()).map_err(storage)?;
            previous.map(|g| self.decode(id, g.value())).transpose()?
        };
        if fields.is_empty() {
            return Ok(());
        }
        let mut index = tx.inner.open_table(index_def(&t)).map_err(storage)?;
        for field in &fields {
            let before = old.as_ref().and_then(|d| field.encode_in(d));
            let after = field.encode_in(doc);
            if before == after {
                continue;
            }
            if let Some(e) = before {
                index.remove((field.as_str(), e.as_slice(), id)).map_err(storage)?;
            }
            if let Some(e) = after {
                index.insert((field.as_str(), e.as_slice(), id), ()).map_err(storage)?;
            }
        }
        Ok(())
    }

    /// The document `id`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Decode`], [`Error::Storage`].
    pub fn get(&self, tx: &impl Readable, id: &str) -> Result<Option<Value>, Error> {
        let t = self.tables()?;
        let docs = tx.open_view(docs_def(&t))?;
        docs.get_with(id, |bytes| self.decode(id, bytes))?.transpose()
    }

    /// Deletes the document `id` and its index entries; returns whether it existed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Decode`] if the document is unreadable (it is then not
    /// deleted), [`Error::Storage`].
    pub fn delete(&self, tx: &WriteTx, id: &str) -> Result<bool, Error> {
        let t = self.tables()?;
        let fields = Self::indexed_fields(tx, &t)?;
        let old = {
            let mut docs = tx.inner.open_table(docs_def(&t)).map_err(storage)?;
            let previous = docs.remove(id).map_err(storage)?;
            previous.map(|g| self.decode(id, g.value())).transpose()?
        };
        let Some(old) = old else {
            return Ok(false);
        };
        if !fields.is_empty() {
            let mut index = tx.inner.open_table(index_def(&t)).map_err(storage)?;
            for field in &fields {
                if let Some(e) = field.encode_in(&old) {
                    index.remove((field.as_str(), e.as_slice(), id)).map_err(storage)?;
                }
            }
        }
        Ok(true)
    }

    /// Indexes `field` (a dotted path such as `"spec.resources.cpu"`), building the index over
    /// the documents already stored. Idempotent: an existing index is left as is. The set of
    /// indexed fields is stored in the database, so the index is maintained by every later
    /// transaction, including after a restart.
    ///
    /// Only scalar values (null, booleans, numbers, strings) are indexed; documents where the
    /// field is missing or holds an array or object have no entry.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::InvalidField`], [`Error::Decode`], [`Error::Storage`].
    pub fn ensure_index(&self, tx: &WriteTx, field: &str) -> Result<(), Error> {
        let t = self.tables()?;
        let path = FieldPath::parse(field)?;
        {
            let mut fields = tx.inner.open_table(fields_def(&t)).map_err(storage)?;
            if fields.insert(path.as_str(), &[][..]).map_err(storage)?.is_some() {
                return Ok(());
            }
        }
        let docs = tx.open_view(docs_def(&t))?;
        let mut index = tx.inner.open_table(index_def(&t)).map_err(storage)?;
        docs.for_each_all(|id, bytes| {
            if let Some(e) = path.encode_in(&self.decode(id, bytes)?) {
                index.insert((path.as_str(), e.as_slice(), id), ()).map_err(storage)?;
            }
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Removes the index of `field`; returns whether it existed. Queries on the field fall back
    /// to full scans.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::InvalidField`], [`Error::Storage`].
    pub fn drop_index(&self, tx: &WriteTx, field: &str) -> Result<bool, Error> {
        let t = self.tables()?;
        let path = FieldPath::parse(field)?;
        {
            let mut fields = tx.inner.open_table(fields_def(&t)).map_err(storage)?;
            if fields.remove(path.as_str()).map_err(storage)?.is_none() {
                return Ok(false);
            }
        }
        let mut index = tx.inner.open_table(index_def(&t)).map_err(storage)?;
        let start = (path.as_str(), &[][..], "");
        index.retain_in(start.., |(f, _, _), ()| f != path.as_str()).map_err(storage)?;
        Ok(true)
    }

    /// The indexed fields, in byte order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Storage`].
    pub fn indexes(&self, tx: &impl Readable) -> Result<Vec<String>, Error> {
        let t = self.tables()?;
        Ok(Self::indexed_fields(tx, &t)?.into_iter().map(|f| f.as_str().to_owned()).collect())
    }

    /// The documents matching `query`, ordered by id (descending with
    /// [`Query::newest_first`]), at most `query.limit(n)` of them.
    ///
    /// If a condition is on an indexed field, the index narrows the candidates: the first `eq`
    /// condition on an indexed field with a scalar value, otherwise the first range condition
    /// on an indexed field. The remaining conditions are checked on each candidate. Without a
    /// usable index every document is read (a full scan). Both ways return the same documents;
    /// [`Collection::explain`] tells which one a query uses.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::InvalidField`], [`Error::InvalidQuery`],
    /// [`Error::Decode`], [`Error::Storage`].
    pub fn find(&self, tx: &impl Readable, query: &Query) -> Result<Vec<(String, Value)>, Error> {
        let t = self.tables()?;
        let compiled = query.compile()?;
        let limit = compiled.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let docs = tx.open_view(docs_def(&t))?;
        let mut out = Vec::new();
        match Self::choose_index(tx, &t, &compiled)? {
            None => {
                let visit = |id: &str, bytes: &[u8]| {
                    let doc = self.decode(id, bytes)?;
                    if compiled.matches(&doc) {
                        out.push((id.to_owned(), doc));
                    }
                    Ok(if out.len() >= limit {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    })
                };
                if compiled.descending {
                    docs.for_each_all_rev(visit)?;
                } else {
                    docs.for_each_all(visit)?;
                }
            }
            Some(i) => {
                let mut ids = Self::index_candidates(tx, &t, &compiled, i)?;
                ids.sort_unstable();
                if compiled.descending {
                    ids.reverse();
                }
                for id in ids {
                    let Some(doc) = docs.get_with(id.as_str(), |b| self.decode(&id, b))? else {
                        continue;
                    };
                    let doc = doc?;
                    if compiled.matches(&doc) {
                        out.push((id, doc));
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// How [`Collection::find`] would evaluate `query` in `tx`.
    ///
    /// # Errors
    ///
    /// As [`Collection::find`], without [`Error::Decode`].
    pub fn explain(&self, tx: &impl Readable, query: &Query) -> Result<Plan, Error> {
        let t = self.tables()?;
        let compiled = query.compile()?;
        Ok(match Self::choose_index(tx, &t, &compiled)? {
            Some(i) => Plan::Index { field: compiled.conditions[i].path.as_str().to_owned() },
            None => Plan::FullScan,
        })
    }

    /// The position of the condition to evaluate through an index, if any.
    fn choose_index(
        tx: &impl Readable,
        t: &CollectionTables,
        compiled: &Compiled,
    ) -> Result<Option<usize>, Error> {
        if compiled.conditions.is_empty() {
            return Ok(None);
        }
        let indexed = Self::indexed_fields(tx, t)?;
        let is_indexed = |i: usize| indexed.contains(&compiled.conditions[i].path);
        let eq = (0..compiled.conditions.len())
            .find(|&i| matches!(compiled.conditions[i].test, Test::EqScalar(_)) && is_indexed(i));
        let range = || {
            (0..compiled.conditions.len())
                .find(|&i| matches!(compiled.conditions[i].test, Test::Range(_)) && is_indexed(i))
        };
        Ok(eq.or_else(range))
    }

    /// The ids the index yields for condition `i` (unordered, without duplicates).
    fn index_candidates(
        tx: &impl Readable,
        t: &CollectionTables,
        compiled: &Compiled,
        i: usize,
    ) -> Result<Vec<String>, Error> {
        let condition = &compiled.conditions[i];
        let field = condition.path.as_str();
        let index = tx.open_view(index_def(t))?;
        let mut ids = Vec::new();
        match &condition.test {
            Test::EqScalar(value) => {
                let start = (field, value.as_slice(), "");
                index.for_each(start.., |(f, v, id), ()| {
                    if f != field || v != value.as_slice() {
                        return Ok(ControlFlow::Break(()));
                    }
                    ids.push(id.to_owned());
                    Ok(ControlFlow::Continue(()))
                })?;
            }
            Test::Range(range) => {
                let lower = range.scan_start();
                let start = (field, lower.as_slice(), "");
                index.for_each(start.., |(f, v, id), ()| {
                    if f != field || range.beyond_upper(v) {
                        return Ok(ControlFlow::Break(()));
                    }
                    if range.contains(v) {
                        ids.push(id.to_owned());
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
            }
            Test::EqJson(_) => {}
        }
        Ok(ids)
    }

    fn indexed_fields(tx: &impl Readable, t: &CollectionTables) -> Result<Vec<FieldPath>, Error> {
        let fields: TableView<'_, _, _> = tx.open_view(fields_def(t))?;
        let mut out = Vec::new();
        fields.for_each_all(|field, _| {
            out.push(FieldPath::parse(field)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    fn decode(&self, id: &str, bytes: &[u8]) -> Result<Value, Error> {
        serde_json::from_slice(bytes).map_err(|source| Error::Decode {
            table: self.name.clone(),
            key: id.to_owned(),
            source,
        })
    }
}

fn docs_def(t: &CollectionTables) -> KvDef<'_> {
    TableDefinition::new(&t.docs)
}

fn fields_def(t: &CollectionTables) -> KvDef<'_> {
    TableDefinition::new(&t.fields)
}

fn index_def(t: &CollectionTables) -> IndexDef<'_> {
    TableDefinition::new(&t.index)
}

#[cfg(test)]
#[path = "collection_tests.rs"]
mod tests;
