//! A file's footer: row count, row groups and column types, checked against the input's
//! contract without reading data.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use polars::prelude::*;

use super::read::guarded;
use super::InputSource;

/// A file's row count and column types, from its Parquet footer.
#[derive(Debug, Clone)]
pub struct FileSchema {
    pub rows: usize,
    /// Each column's type, or the name of a type cxmetrics cannot read (e.g. `Decimal(38,9)`).
    pub columns: Vec<(String, std::result::Result<DataType, String>)>,
    /// Rows per row group, in file order.
    pub row_groups: Vec<usize>,
}

impl FileSchema {
    /// The type of column `name`, when the file has it.
    pub fn column(&self, name: &str) -> Option<&std::result::Result<DataType, String>> {
        self.columns.iter().find(|(n, _)| n == name).map(|c| &c.1)
    }
}

/// The polars type of a Parquet column, or the name of a type this build does not read.
/// (polars' own conversion panics on those, naming a compile-time feature.)
fn file_type(field: &ArrowField) -> std::result::Result<DataType, String> {
    use ArrowDataType as A;
    match field.dtype() {
        A::Decimal(p, s) | A::Decimal32(p, s) | A::Decimal64(p, s) | A::Decimal256(p, s)
            if *p > 38 || s > p =>
        {
            Err(format!("Decimal({p},{s})"))
        }
        dt => catch_unwind(AssertUnwindSafe(|| DataType::from_arrow_field(field)))
            .map_err(|_| format!("{dt:?}")),
    }
}

pub fn read_schema(path: &Path) -> std::result::Result<FileSchema, String> {
    let shown = path.display();
    let file = super::files::open_file(path).map_err(|e| format!("{shown}: {e}"))?;
    guarded(|| {
        let mut reader = ParquetReader::new(file);
        let rows = reader.num_rows()?;
        let schema = reader.schema()?;
        let columns = schema
            .iter_values()
            .map(|f| (f.name.to_string(), file_type(f)))
            .collect();
        let row_groups = reader
            .get_metadata()?
            .row_groups
            .iter()
            .map(|g| g.num_rows())
            .collect();
        Ok(FileSchema {
            rows,
            columns,
            row_groups,
        })
    })
    .map_err(|e| format!("{shown}: not a readable Parquet file: {e}"))
}

/// The file columns a run reads from a file of `source`: the contract columns the file has that
/// a metric reads or a `by` names, then the other `by` columns.
pub fn wanted_columns(source: &InputSource, schema: &FileSchema, extra: &[String]) -> Vec<String> {
    let contract = source.kind.contract();
    let mut wanted: Vec<String> = Vec::new();
    for spec in contract.columns {
        if !spec.read && !extra.iter().any(|e| e == spec.name) {
            continue;
        }
        let file_col = source.file_col(spec.name);
        if schema.column(file_col).is_some() {
            wanted.push(file_col.to_string());
        }
    }
    for name in extra {
        if contract.column(name).is_none() && !wanted.contains(name) {
            wanted.push(name.clone());
        }
    }
    wanted
}

/// Every way `schema` breaks the input's contract (plus the extra columns a pipeline needs).
pub fn contract_problems(
    source: &InputSource,
    path: &Path,
    schema: &FileSchema,
    extra: &[String],
) -> Vec<String> {
    let contract = source.kind.contract();
    let where_ = format!("{} ({}, {} rows)", source.kind, path.display(), schema.rows);
    let unsupported = |name: &str, mapped: &str, found: &str| {
        let hint = if found.starts_with("Decimal") {
            "cxmetrics reads Decimal columns of precision up to 38"
        } else {
            "cxmetrics does not read this type"
        };
        format!("{where_}: column `{name}`{mapped} has type {found}: {hint}")
    };
    let mut problems = Vec::new();
    for spec in contract.columns {
        let file_col = source.file_col(spec.name);
        let mapped = if file_col != spec.name {
            format!(" (mapped to file column `{file_col}`)")
        } else {
            String::new()
        };
        // An optional column is required when a pipeline of the job reads it (`event_type` for
        // an event filter).
        let needed = extra.iter().any(|e| e == spec.name);
        match schema.column(file_col) {
            None if spec.nullable && !needed => {}
            None => problems.push(format!(
                "{where_}: missing column `{}`{mapped}{}; the file has: {}",
                spec.name,
                if needed {
                    " (the job's pipelines read it)"
                } else {
                    ""
                },
                schema
                    .columns
                    .iter()
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(Err(found)) => problems.push(unsupported(spec.name, &mapped, found)),
            Some(Ok(dt)) if !spec.ty.accepts(dt) => problems.push(format!(
                "{where_}: column `{}`{mapped} must be {}, found {dt}",
                spec.name,
                spec.ty.describe()
            )),
            Some(Ok(dt)) => {
                if let Some(scale) = source.money_scales.get(spec.name) {
                    if !dt.is_integer() {
                        problems.push(format!(
                            "{where_}: column `{}`{mapped} has a scale of {scale}, which is for \
                             an integer column of minor units; found {dt}",
                            spec.name
                        ));
                    }
                }
            }
        }
    }
    for name in extra {
        if contract.column(name).is_some() {
            continue;
        }
        match schema.column(name) {
            None => problems.push(format!(
                "{where_}: missing column `{name}` (used as a `by` segment)"
            )),
            Some(Err(found)) => problems.push(unsupported(name, "", found)),
            Some(Ok(_)) => {}
        }
    }
    for contract_col in source.rename.keys() {
        if contract.column(contract_col).is_none() {
            problems.push(format!(
                "{}: `columns` maps `{contract_col}`, which is not a column of the {} contract",
                source.kind, source.kind
            ));
        }
    }
    problems
}
