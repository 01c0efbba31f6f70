//! `canon sql` through the real binary: ad-hoc SQL over every extract as
//! `system.table`, tab-separated out.

mod common;

use common::*;

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
