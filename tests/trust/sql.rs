//! `canon sql` through the real binary: ad-hoc SQL over every extract as
//! `system.table`, tab-separated out.

use crate::common::*;

// The fixture's rate table has EUR twice (0.800000 until 2025-03-01, then
// 0.900000), GBP and JPY once each.
#[test]
fn sql_reads_every_table_as_system_dot_table() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    let d = data.path().to_str().unwrap();
    let o = canon(
        &repo(),
        &[
            "sql",
            "--data",
            d,
            "SELECT iso_code, count(*) AS n, sum(conversion_rate) AS total FROM crm.dated_conversion_rate GROUP BY iso_code ORDER BY iso_code",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // EUR: 0.800000 + 0.900000 = 1.700000.
    assert_eq!(
        stdout(&o),
        "iso_code\tn\ttotal\nEUR\t2\t1.700000\nGBP\t1\t0.750000\nJPY\t1\t150.000000\n"
    );
    // From a file: the fixture has deals D1..D15.
    let file = data.path().join("q.sql");
    std::fs::write(&file, "SELECT count(*) AS n FROM crm.opportunity").unwrap();
    let o = canon(
        &repo(),
        &["sql", "--data", d, "--file", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n15\n");
    // No rows is still the header: the columns, nothing under them (it
    // used to print nothing at all, which a reader cannot tell from a
    // failure that wrote nothing).
    let o = canon(
        &repo(),
        &[
            "sql",
            "--data",
            d,
            "SELECT iso_code, conversion_rate FROM crm.dated_conversion_rate WHERE iso_code = 'XXX'",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "iso_code\tconversion_rate\n");
}

#[test]
fn sql_over_an_unknown_table_fails_clearly() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    let o = canon(
        &repo(),
        &[
            "sql",
            "--data",
            data.path().to_str().unwrap(),
            "SELECT * FROM crm.nope",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

// A statement opens only the tables it names: a damaged file or a missing
// folder elsewhere in the data root does not stop it, and one it names is
// reported as that table's (system/table, file), exit 1.
#[test]
fn sql_reads_only_the_tables_it_names() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    let d = data.path().to_str().unwrap();
    let rates = data.path().join("crm/dated_conversion_rate");
    for f in std::fs::read_dir(&rates).unwrap() {
        std::fs::write(f.unwrap().path(), b"not parquet").unwrap();
    }
    std::fs::remove_dir_all(data.path().join("crm/account")).unwrap();
    // The fixture has deals D1..D15, in a CTE and a subquery too.
    for sql in [
        "SELECT count(*) AS n FROM crm.opportunity",
        "WITH o AS (SELECT * FROM crm.opportunity) SELECT count(*) AS n FROM (SELECT id FROM o)",
    ] {
        let o = canon(&repo(), &["sql", "--data", d, sql]);
        assert!(o.status.success(), "{sql}: {}", stderr(&o));
        assert_eq!(stdout(&o), "n\n15\n", "{sql}");
    }
    let o = canon(
        &repo(),
        &[
            "sql",
            "--data",
            d,
            "SELECT count(*) FROM crm.dated_conversion_rate",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("crm/dated_conversion_rate file") && stderr(&o).contains("damaged"),
        "{}",
        stderr(&o)
    );
    // Named inside a join's subquery: still found, and named.
    let o = canon(
        &repo(),
        &[
            "sql",
            "--data",
            d,
            "SELECT count(*) FROM crm.opportunity o WHERE o.account_id IN (SELECT id FROM crm.account)",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("crm/account") && stderr(&o).contains("does not exist"),
        "{}",
        stderr(&o)
    );
}

// `canon sql` is read-only by the engine's own statement options, not by
// matching text: every spelling of a write is refused with exit 2 and
// leaves the extracts and the target paths untouched.
#[test]
fn sql_refuses_every_statement_that_writes_or_changes_state() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    let d = data.path().to_str().unwrap();
    let before = contents(data.path());
    let target = data.path().join("written.csv");
    let t = target.to_str().unwrap();
    let statements = [
        format!("COPY (SELECT 'x' AS x) TO '{t}' STORED AS CSV"),
        format!("copy (select 1 as x) to '{t}' stored as csv"),
        format!("/* harmless */ -- really\nCOPY (SELECT 1 AS x) TO '{t}' STORED AS CSV"),
        format!("EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{t}' STORED AS CSV"),
        "INSERT INTO crm.opportunity SELECT * FROM crm.opportunity LIMIT 1".to_string(),
        "insert into crm.opportunity select * from crm.opportunity limit 1".to_string(),
        "WITH o AS (SELECT * FROM crm.opportunity LIMIT 1) INSERT INTO crm.opportunity SELECT * FROM o"
            .to_string(),
        format!("CREATE EXTERNAL TABLE x (a INT) STORED AS CSV LOCATION '{t}'"),
        "CREATE TABLE t AS SELECT 1 AS a".to_string(),
        "CREATE VIEW v AS SELECT 1 AS a".to_string(),
        "DROP TABLE crm.opportunity".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
    ];
    for sql in &statements {
        let o = canon(&repo(), &["sql", "--data", d, sql]);
        assert_eq!(o.status.code(), Some(2), "{sql}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("canon sql is read-only"),
            "{sql}: {}",
            stderr(&o)
        );
        assert!(!target.exists(), "{sql} wrote {t}");
        assert_eq!(contents(data.path()), before, "{sql} changed the extracts");
    }
    // A plain query still runs: 15 deals in the fixture.
    let o = canon(
        &repo(),
        &[
            "sql",
            "--data",
            d,
            "SELECT count(*) AS n FROM crm.opportunity",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n15\n");
}

// `canon sql` reads the files a governed query reads: part files in
// subfolders count, hidden and `_`-prefixed ones do not. The fixture's 15
// deals, plus a copy in a subfolder: 30; copies named `.parquet` and
// `_tmp.parquet` add nothing.
#[test]
fn sql_reads_the_same_files_as_a_governed_query() {
    let data = tempfile::tempdir().unwrap();
    write_company(data.path());
    let table = data.path().join("crm/opportunity");
    std::fs::create_dir(table.join("sub")).unwrap();
    for to in ["sub/part-1.parquet", ".parquet", "_tmp.parquet"] {
        std::fs::copy(table.join("part-00000.parquet"), table.join(to)).unwrap();
    }
    let d = data.path().to_str().unwrap();
    let o = canon(
        &repo(),
        &[
            "sql",
            "--data",
            d,
            "SELECT count(*) AS n FROM crm.opportunity",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n30\n");
}
