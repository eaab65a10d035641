//! `kefu import KIND FILE.csv [--dry-run] [--report FILE]`: the first load,
//! and CRMs without an API. The CSV's header names the fields of the JSON
//! rows (`docs/crm.md`); the rows go through the same code as the API
//! ([`Sync`]), straight to the database. A dry run writes each chunk in a
//! transaction that is rolled back: every check runs, references included,
//! and nothing is kept.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde_json::{Map, Value, json};

use super::apply::{Rejected, Report, Sync};
use super::rows::Kind;
use crate::config::Settings;
use crate::store::Store;

/// Rows handed to the sync at once (progress is shown between them).
const STEP: usize = 5_000;
/// Rejected rows printed (all go to `--report`).
const SHOWN: usize = 20;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What the file holds.
    #[arg(value_enum)]
    pub kind: Kind,
    /// A CSV file with a header row (UTF-8, a BOM is fine).
    pub file: PathBuf,
    /// Check every row against the database, keep nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the rejected rows here (CSV: line, key, error).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress line (logs, CI).
    #[arg(long)]
    pub quiet: bool,
}

pub async fn run(args: &ImportArgs, settings: &Settings) -> ExitCode {
    match import(args, settings).await {
        Ok(report) if report.rejected.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn import(args: &ImportArgs, settings: &Settings) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let table = parse_csv(text.trim_start_matches('\u{feff}'))
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let Some((header, records)) = table.split_first() else {
        anyhow::bail!("{} is empty: it needs a header row", args.file.display());
    };
    let rows: Vec<Value> = records
        .iter()
        .filter(|r| !(r.len() == 1 && r[0].trim().is_empty()))
        .map(|r| to_row(args.kind, header, r))
        .collect();
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    let sync = Sync::offline(&store, settings.crm.utc_offset_hours, args.dry_run);
    let started = Instant::now();
    let total = rows.len();
    let mut report = Report {
        dry_run: args.dry_run,
        ..Report::default()
    };
    let mut done = 0;
    let mut rows = rows.into_iter();
    loop {
        let step: Vec<Value> = rows.by_ref().take(STEP).collect();
        if step.is_empty() {
            break;
        }
        let n = step.len();
        let mut part = sync.apply(args.kind, step).await?;
        for r in &mut part.rejected {
            r.index += done;
        }
        report.received += part.received;
        report.applied += part.applied;
        report.unchanged += part.unchanged;
        report.stale += part.stale;
        report.rejected.append(&mut part.rejected);
        done += n;
        if !args.quiet {
            progress(done, total, started);
        }
    }
    if !args.quiet && total > 0 {
        eprintln!();
    }
    store.close().await;
    summarise(args, &report, started.elapsed().as_secs_f64());
    if let Some(path) = &args.report {
        write_report(path, &report.rejected)?;
        println!("rejected rows written to {}", path.display());
    }
    Ok(report)
}

fn progress(done: usize, total: usize, started: Instant) {
    let width = 30;
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
    eprint!(
        "\r[{}{}] {done}/{total} rows, {rate:.0} rows/s",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    let _ = std::io::stderr().flush();
}

fn summarise(args: &ImportArgs, r: &Report, secs: f64) {
    let mode = if args.dry_run {
        " (dry run: nothing kept)"
    } else {
        ""
    };
    println!(
        "{}: {} rows in {secs:.1} s{mode}: {} applied, {} unchanged, {} stale, {} rejected",
        args.file.display(),
        r.received,
        r.applied,
        r.unchanged,
        r.stale,
        r.rejected.len()
    );
    for x in r.rejected.iter().take(SHOWN) {
        println!("  line {}: {}{}", line_of(x), key_of(x), x.error);
    }
    if r.rejected.len() > SHOWN {
        println!("  … and {} more (see --report)", r.rejected.len() - SHOWN);
    }
}

/// The file's line of a data row (the header is line 1; no multi-line cells
/// counted).
fn line_of(r: &Rejected) -> usize {
    r.index + 2
}

fn key_of(r: &Rejected) -> String {
    r.key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default()
}

fn write_report(path: &std::path::Path, rejected: &[Rejected]) -> anyhow::Result<()> {
    let mut out = String::from("line,key,error\n");
    for r in rejected {
        out.push_str(&format!(
            "{},{},{}\n",
            line_of(r),
            csv_cell(r.key.as_deref().unwrap_or("")),
            csv_cell(&r.error)
        ));
    }
    std::fs::write(path, out).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// RFC 4180: commas, quoted cells with `""` inside, line breaks in quotes,
/// CRLF or LF.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                cell.push(c);
            }
            (false, '"') if cell.is_empty() => quoted = true,
            (false, '"') => return Err(format!("line {line}: a quote inside an unquoted cell")),
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
                line += 1;
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err(format!("line {line}: a quoted cell is not closed"));
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    Ok(rows)
}

/// One CSV record as the JSON row the API takes.
pub fn to_row(kind: Kind, header: &[String], record: &[String]) -> Value {
    let mut row = Map::new();
    let mut identities = Map::new();
    for (name, raw) in header.iter().zip(record) {
        let name = name.trim();
        let v = raw.trim();
        if v.is_empty() {
            continue;
        }
        let list = || -> Vec<Value> {
            v.split('|')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect()
        };
        let scoped = || -> Vec<Value> {
            v.split('|')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s.split_once(':') {
                    Some((account, id)) => json!({"account": account, "id": id}),
                    None => json!({"account": "", "id": s}),
                })
                .collect()
        };
        let value = match (kind, name) {
            (_, "capacity") => v
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(v.to_owned())),
            (Kind::Agents, "groups") | (Kind::Customers, "tags") => Value::Array(list()),
            (Kind::Shifts, "shifts") => Value::Array(
                v.split('|')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| match s.split_once('-') {
                        Some((a, b)) => json!({"start": a.trim(), "end": b.trim()}),
                        None => json!({"start": s, "end": ""}),
                    })
                    .collect(),
            ),
            (Kind::Customers, "unionid" | "web_user") => {
                identities.insert(name.to_owned(), Value::String(v.to_owned()));
                continue;
            }
            (Kind::Customers, "oa_openid" | "wecom_external_userid") => {
                identities.insert(name.to_owned(), Value::Array(scoped()));
                continue;
            }
            (Kind::Vehicles, "details") => {
                serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()))
            }
            _ => Value::String(v.to_owned()),
        };
        row.insert(name.to_owned(), value);
    }
    if !identities.is_empty() {
        row.insert("identities".into(), Value::Object(identities));
    }
    Value::Object(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_keep_commas_quotes_and_line_breaks() {
        let t = parse_csv("id,name\r\n1,\"王, \"\"老\"\"\n二\"\n2,b").unwrap();
        assert_eq!(
            t,
            vec![
                vec!["id", "name"],
                vec!["1", "王, \"老\"\n二"],
                vec!["2", "b"]
            ]
        );
        assert!(parse_csv("a,\"b").unwrap_err().contains("not closed"));
        assert!(parse_csv("a,b\"c").unwrap_err().contains("quote"));
    }

    #[test]
    fn columns_become_the_api_s_fields() {
        let h = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        let agent = to_row(
            Kind::Agents,
            &h("id,login,name,groups,capacity,version"),
            &h("a1,zhang,张三,g1|g2,8,3"),
        );
        assert_eq!(
            agent,
            json!({"id": "a1", "login": "zhang", "name": "张三", "groups": ["g1", "g2"], "capacity": 8, "version": "3"})
        );
        let shift = to_row(
            Kind::Shifts,
            &h("agent,day,shifts,version"),
            &h("a1,2026-12-07,09:00-12:00|22:00-06:00,1"),
        );
        assert_eq!(
            shift["shifts"][1],
            json!({"start": "22:00", "end": "06:00"})
        );
        let c = to_row(
            Kind::Customers,
            &h("id,unionid,oa_openid,phone,version"),
            &h("c1,u1,demo-oa:o1|demo-oa:o2,,1"),
        );
        assert_eq!(
            c["identities"]["oa_openid"][1],
            json!({"account": "demo-oa", "id": "o2"})
        );
        assert_eq!(c["identities"]["unionid"], "u1");
        assert!(c.get("phone").is_none(), "an empty cell is an absent field");
    }
}
