//! The analyst's report: one self-contained HTML file drawn from an output directory's tables
//! and manifest (`cxmetrics report OUTPUT_DIR`, or `output.report: true` in a job, which
//! publishes it with the tables).
//!
//! Every number shown is a value of a table (or a count of `customer_ltv` rows per value tier);
//! the report computes no metric of its own. Each chart mark and table cell that shows a value
//! carries the table, column, row key and exact value in `data-*` attributes, which the
//! browser test reads back and compares with the Parquet files. A section is drawn only when
//! its table exists. The page has no script and loads nothing: styles are inline, charts are
//! SVG written here (`chart`).

mod chart;
mod html;
mod sections;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{CxError, Result};

/// The file name of the report beside the manifest of a run that writes it.
pub const REPORT_FILE: &str = "report.html";

/// Where each table of one published result is.
pub struct Tables {
    paths: BTreeMap<String, PathBuf>,
}

impl Tables {
    pub fn new(paths: BTreeMap<String, PathBuf>) -> Tables {
        Tables { paths }
    }

    /// The tables a published output directory holds, from its `manifest.json` (or, for the
    /// hive layout, the manifest folder `<dir>/_manifest/as_of=YYYY-MM-DD`). A table whose
    /// recorded path is gone is looked for by file name beside the manifest (an output
    /// directory that was moved).
    pub fn published(dir: &Path) -> Result<(Tables, serde_json::Value)> {
        let manifest = read_manifest(
            &dir.join("manifest.json"),
            "give a directory a cxmetrics run published into (for the hive layout, its \
             `_manifest/as_of=YYYY-MM-DD` folder)",
        )?;
        let mut paths = BTreeMap::new();
        for (name, entry) in manifest["outputs"].as_object().expect("checked") {
            let recorded = PathBuf::from(entry["path"].as_str().unwrap_or_default());
            let path = if recorded.is_file() {
                recorded
            } else {
                dir.join(format!("{name}.parquet"))
            };
            paths.insert(name.clone(), path);
        }
        Ok((Tables { paths }, manifest))
    }
}

/// The manifest at `location` (a local path or an object storage URI); `hint` says what to do
/// when it cannot be read.
pub fn read_manifest(location: &Path, hint: &str) -> Result<serde_json::Value> {
    let shown = location.display().to_string();
    let bytes = crate::storage::read(location)
        .map_err(|e| CxError::input(format!("{shown}: cannot read it ({e}); {hint}")))?;
    parse_manifest(&shown, &String::from_utf8_lossy(&bytes))
}

/// A run's `manifest.json` (`shown` names it in errors): JSON with an `outputs` object.
pub fn parse_manifest(shown: &str, text: &str) -> Result<serde_json::Value> {
    let manifest: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| CxError::input(format!("{shown}: not a cxmetrics manifest ({e})")))?;
    if !manifest["outputs"].is_object() {
        return Err(CxError::input(format!(
            "{shown}: not a cxmetrics manifest (no `outputs`)"
        )));
    }
    Ok(manifest)
}

impl Tables {
    /// Table `name`, when the result has it.
    pub fn frame(&self, name: &str) -> Result<Option<DataFrame>> {
        let Some(path) = self.paths.get(name) else {
            return Ok(None);
        };
        let file = crate::inputs::open_file(path)
            .map_err(|e| CxError::input(format!("table {name}: {} ({e})", path.display())))?;
        // Money written as Decimal (`output.money: decimal`) is shown as the number it is.
        let read = || -> PolarsResult<DataFrame> {
            let df = ParquetReader::new(file).finish()?;
            let cast: Vec<Expr> = df
                .schema()
                .iter()
                .map(|(n, dt)| match dt {
                    DataType::Decimal(_, _) => col(n.clone()).cast(DataType::Float64),
                    _ => col(n.clone()),
                })
                .collect();
            df.lazy().select(cast).collect()
        };
        read().map(Some).map_err(|e| {
            CxError::input(format!(
                "table {name}: cannot read {} ({e})",
                path.display()
            ))
        })
    }

    /// Customers per value of one column of table `name`, in value order (for `customer_ltv`,
    /// whose other columns the report does not need).
    pub fn counts(&self, name: &str, column: &str) -> Result<Option<DataFrame>> {
        let Some(path) = self.paths.get(name) else {
            return Ok(None);
        };
        let file = crate::inputs::open_file(path)
            .map_err(|e| CxError::input(format!("table {name}: {} ({e})", path.display())))?;
        let read = || -> PolarsResult<DataFrame> {
            ParquetReader::new(file)
                .with_columns(Some(vec![column.to_string()]))
                .finish()?
                .lazy()
                .group_by([col(column)])
                .agg([len().cast(DataType::Int64).alias("count")])
                .sort([column], Default::default())
                .collect()
        };
        read().map(Some).map_err(|e| {
            CxError::input(format!(
                "table {name}: cannot read {} ({e})",
                path.display()
            ))
        })
    }
}

/// The report of one result as HTML text.
pub fn render(tables: &Tables, manifest: &serde_json::Value) -> Result<String> {
    let sections = sections::all(tables, manifest)?;
    let job = manifest["job"].as_str().unwrap_or("cxmetrics");
    let subtitle = format!(
        "as of {} · time zone {} · cxmetrics {}",
        manifest["as_of"].as_str().unwrap_or("?"),
        manifest["timezone"].as_str().unwrap_or("?"),
        manifest["cxmetrics_version"].as_str().unwrap_or("?"),
    );
    Ok(html::page(
        &format!("cxmetrics report: {job}"),
        &subtitle,
        &sections,
    ))
}

/// `cxmetrics report DIR --out FILE`: writes the report of a published result, atomically
/// (a temporary file beside `out`, renamed over it).
pub fn write(dir: &Path, out: &Path) -> Result<()> {
    let text = match dir.to_str().filter(|d| crate::storage::is_remote(d)) {
        Some(uri) => render_remote(uri)?,
        None => {
            let (tables, manifest) = Tables::published(dir)?;
            render(&tables, &manifest)?
        }
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| CxError::Usage(format!("--out {}: not a file name", out.display())))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let io = |what: &str, p: &Path, e: std::io::Error| {
        CxError::internal(format!("{what} {}", p.display()), e)
    };
    std::fs::write(&tmp, text.as_bytes()).map_err(|e| io("writing", &tmp, e))?;
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("writing", out, e)
    })
}

/// The report of a result in object storage: its manifest (the commit) and the tables it names,
/// read from the store.
fn render_remote(uri: &str) -> Result<String> {
    let manifest = read_manifest(
        &PathBuf::from(format!("{}/manifest.json", uri.trim_end_matches('/'))),
        "give the URI of a result a cxmetrics run committed",
    )?;
    let paths = manifest["outputs"]
        .as_object()
        .expect("checked")
        .iter()
        .map(|(name, o)| {
            (
                name.clone(),
                PathBuf::from(o["path"].as_str().unwrap_or_default()),
            )
        })
        .collect();
    render(&Tables::new(paths), &manifest)
}

/// A column as text (dates as YYYY-MM-DD), nulls as None.
fn strings(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    let c = df.column(name)?.cast(&DataType::String)?;
    Ok(c.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

/// A numeric column as doubles, nulls (and NaN) as None.
fn floats(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    Ok(c.f64()?
        .iter()
        .map(|v| v.filter(|x| x.is_finite()))
        .collect())
}

fn bools(df: &DataFrame, name: &str) -> PolarsResult<Vec<bool>> {
    Ok(df
        .column(name)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect())
}
