//! The history of published numbers (issue 17 item 6), through the real
//! binary on the fixture company: every publish appends its numbers to the
//! publication's history.jsonl; `canon history` says how a number changed
//! and whether its data or its definition moved it; a restated closed
//! period is a warning (the fixture's books close Feb–Apr 2025, so
//! FY2026-Q1 is closed).

use std::path::Path;

use crate::common::*;

fn publish(project: &Path, data: &Path, out: &Path) -> std::process::Output {
    publish_only(project, data, out, "bookings", &["--period", "FY2026-Q1"])
}

/// bookings' filter, and the filter narrowed to deals of 1000 or more (a
/// definition its sign-off no longer approves, unless signed again).
const WON: &str = "    filter: is_won\n";
const NARROWED: &str = "    filter: is_won AND amount >= 1000\n";

/// The fixture company, a copy of the project, the folder holding the
/// publication, and the publication: bookings FY2026-Q1 (3694.46)
/// published once from them.
fn published_once() -> (
    tempfile::TempDir,
    tempfile::TempDir,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let data = fixture();
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");
    let o = publish(project.path(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (data, project, dir, out)
}

fn history(project: &Path, out: &Path) -> String {
    let o = history_of(project, out, "FY2026-Q1");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

/// `canon history bookings --period PERIOD --publication OUT`, as it ends.
fn history_of(project: &Path, out: &Path, period: &str) -> std::process::Output {
    canon(
        project,
        &[
            "history",
            "bookings",
            "--period",
            period,
            "--publication",
            out.to_str().unwrap(),
        ],
    )
}

/// A won deal D99 (USD 100.00, closed 2025-03-05 on Globex): one more
/// counted deal in FY2026-Q1.
fn add_deal(data: &Path) {
    add_part(
        data,
        "crm/opportunity",
        vec![
            ("id", Col::Str(vec!["D99"])),
            ("account_id", Col::Str(vec!["A1"])),
            ("owner_id", Col::Str(vec!["U1"])),
            ("name", Col::Str(vec!["deal"])),
            ("type", Col::Str(vec!["New Business"])),
            ("stage_name", Col::Str(vec!["Closed Won"])),
            ("forecast_category", Col::Str(vec!["Closed"])),
            ("probability", Col::Double(vec![100.0])),
            ("amount", Col::Money(vec![Some("100.00")])),
            ("currency_iso_code", Col::Str(vec!["USD"])),
            ("close_date", Col::Date(vec!["2025-03-05"])),
            ("created_date", Col::Ts(vec!["2025-02-01T18:00:00Z"])),
            ("is_closed", Col::Bool(vec![true])),
            ("is_won", Col::Bool(vec![true])),
            ("is_deleted", Col::Bool(vec![false])),
            ("lead_source", Col::OptStr(vec![Some("Web")])),
        ],
    );
}

// Publication 1: bookings FY2026-Q1 = 3694.46 (flow_metrics.rs).
// Publication 2, with D99: 3694.46 + 100.00 = 3794.46, moved by the data; a
// restatement of a closed period. Publication 3, the definition changed
// (v2, only deals of 1000 or more: D1 1000.00 + D2 1250.00 + D3 1111.11 =
// 3361.11; D99 is under 1000): moved by the definition.
#[test]
fn each_publish_appends_and_history_says_what_moved_a_number() {
    let data = fixture();
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");

    let o = publish(project.path(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));

    add_deal(data.path());
    let o = publish(project.path(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let restated =
        "warning: restated closed period: `bookings` for FY2026-Q1 was 3,694.46 when published at ";
    assert!(stderr(&o).contains(restated), "{}", stderr(&o));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["warnings"][0]
            .as_str()
            .unwrap()
            .ends_with("now 3,794.46 (its accounting periods are closed)"),
        "{manifest}"
    );
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .contains(&"history.jsonl".into())
    );

    let sales = project.path().join("metrics/sales.yaml");
    let text = std::fs::read_to_string(&sales).unwrap();
    let text = text
        .replacen(WON, NARROWED, 1)
        .replacen("    version: 1\n", "    version: 2\n", 1);
    std::fs::write(&sales, text).unwrap();
    let signed = canon(project.path(), &["signoff", "bookings", "--by", "reviewer"]);
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    let o = publish(project.path(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let h = history(project.path(), &out);
    let lines: Vec<&str> = h.lines().collect();
    assert!(
        lines[0].starts_with("bookings FY2026-Q1: 3 publication(s) in "),
        "{h}"
    );
    let cells = |l: &str| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
    // value, change, version+definition, inputs, moved by
    assert!(cells(lines[2]).starts_with("3,694.46 v1"), "{h}");
    assert!(cells(lines[3]).starts_with("3,794.46 +100.00 v1"), "{h}");
    assert!(cells(lines[3]).ends_with(" data"), "{h}");
    assert!(lines[4].contains("warning: restated closed period"), "{h}");
    assert!(cells(lines[5]).starts_with("3,361.11 -433.35 v2"), "{h}");
    assert!(cells(lines[5]).ends_with(" definition"), "{h}");
}

// A history that does not read stops the publish before anything changes:
// canon never rewrites it short.
#[test]
fn a_damaged_history_stops_the_publish_and_is_kept() {
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");
    let o = publish(&repo(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = out.join("history.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{not json\n");
    std::fs::write(&path, &text).unwrap();
    let before = contents(&out);
    let o = publish(&repo(), data.path(), &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("history.jsonl: line 2: a history row does not read"),
        "{}",
        stderr(&o)
    );
    assert_eq!(contents(&out), before);
}

// A history removed, emptied, cut short or edited (the manifest says how
// many rows it wrote, one here, and their sha256) was started again from
// nothing, or carried forward, with exit 0. Now each stops the publish and
// `canon history`, with the folder left as it was.
#[test]
fn a_lost_history_stops_the_publish() {
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");
    let o = publish(&repo(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = out.join("history.jsonl");
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.lines().count(), 1);
    // (what, the damage, what canon says)
    type Damage = (&'static str, fn(&Path), &'static str);
    let damages: [Damage; 4] = [
        (
            "removed",
            |p| std::fs::remove_file(p).unwrap(),
            "it is missing",
        ),
        (
            "emptied",
            |p| std::fs::write(p, "").unwrap(),
            "it holds 0 row(s), and the publication wrote 1",
        ),
        (
            "doubled",
            |p| {
                let t = std::fs::read_to_string(p).unwrap();
                std::fs::write(p, format!("{t}{t}")).unwrap();
            },
            "it holds 2 row(s), and the publication wrote 1",
        ),
        (
            "edited",
            |p| {
                // 3694.46, the fixture's bookings, made 9999999.99.
                let t = std::fs::read_to_string(p).unwrap();
                assert!(t.contains("\"3694.46\""), "{t}");
                std::fs::write(p, t.replace("\"3694.46\"", "\"9999999.99\"")).unwrap();
            },
            "its bytes are not those the publication wrote",
        ),
    ];
    for (what, damage, said) in damages {
        std::fs::write(&path, &written).unwrap();
        damage(&path);
        let before = contents(&out);
        let o = publish(&repo(), data.path(), &out);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
        assert!(stderr(&o).contains(said), "{what}: {}", stderr(&o));
        assert_eq!(contents(&out), before, "{what}");
        let o = history_of(&repo(), &out, "FY2026-Q1");
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
    }
}

// A history whose manifest is gone cannot be checked: `canon history`
// refused nothing and showed whatever the file said (an edit included),
// while publish refused the folder. Now both refuse it.
#[test]
fn a_history_without_its_manifest_is_refused() {
    let (_data, project, _dir, out) = published_once();
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let o = history_of(project.path(), &out, "FY2026-Q1");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("published/manifest.json: it is missing, and the history beside it cannot be checked without it (it records how many rows the history holds and their sha256): the publication is damaged; restore it from a backup, or publish into a new folder"),
        "{}",
        stderr(&o)
    );
}

// A period is its days: FY2026-Q1's publication is found when asked as
// 2025-02-01..2025-05-01 (it said "0 publication(s)").
#[test]
fn history_finds_a_period_however_it_is_written() {
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");
    let o = publish(&repo(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for period in ["FY2026-Q1", "2025-02-01..2025-05-01"] {
        let o = history_of(&repo(), &out, period);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let said = stdout(&o);
        assert!(said.contains(": 1 publication(s) in "), "{period}: {said}");
        // 3694.46: bookings FY2026-Q1 on the fixture (flow_metrics.rs).
        assert!(said.contains("3,694.46"), "{period}: {said}");
    }
}

// A blocked result is a history row: the history showed the last number
// published as if it stood, and still did after a later publish that left
// the metric out (`--only pipeline_created`), since only the latest manifest said it was
// blocked. Publication 1: bookings FY2026-Q1 = 3694.46 (flow_metrics.rs);
// 2: blocked (the definition changed after its sign-off); 3: pipeline_created only;
// 4: the definition restored, 3694.46 again, a change of 0 from the last
// number published, and no restatement of the closed period (the blocked
// row has no number to differ from).
#[test]
fn history_says_when_the_latest_publication_blocked_the_number() {
    let (data, project, _dir, out) = published_once();
    let sales = project.path().join("metrics/sales.yaml");
    replace_in(&sales, WON, NARROWED);
    let o = publish(project.path(), data.path(), &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let ends_blocked = |h: &str| {
        assert!(h.contains(": 2 publication(s) in "), "{h}");
        let lines: Vec<&str> = h.lines().collect();
        let [.., row, why] = lines[..] else {
            panic!("{h}")
        };
        assert!(row.trim_end().ends_with(" blocked"), "{h}");
        assert!(
            why.trim_start()
                .starts_with("blocked: sign-off stale: `bookings`"),
            "{h}"
        );
        // Said once: the manifest's own notice is not repeated.
        assert_eq!(h.matches("sign-off stale").count(), 1, "{h}");
    };
    ends_blocked(&history(project.path(), &out));
    let o = publish_only(
        project.path(),
        data.path(),
        &out,
        "pipeline_created",
        &["--period", "FY2026-Q1"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    ends_blocked(&history(project.path(), &out));

    replace_in(&sales, NARROWED, WON);
    let o = publish(project.path(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("restated"), "{}", stderr(&o));
    let h = history(project.path(), &out);
    assert!(h.contains(": 3 publication(s) in "), "{h}");
    let last = h.lines().last().unwrap();
    assert!(last.contains(" 3,694.46 ") && last.contains(" 0 "), "{h}");
}

#[test]
fn history_of_a_folder_that_is_not_a_publication_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = history_of(&repo(), dir.path(), "FY2026-Q1");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a canon publication"),
        "{}",
        stderr(&o)
    );
}

// A publish switching a new publication in between canon history's read of
// the manifest and of the history made the two disagree, and the history
// was reported damaged. Readers now hold the publish lock shared: while a
// run holds it (here the test, as a publish would), canon history waits
// and says so, then reads the publication whole.
#[test]
fn history_waits_for_a_publish_in_progress() {
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");
    let o = publish(&repo(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Also named through a link and as `published/.`: the lock is the real
    // parent's (it was the link's folder, or the publication itself).
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    let dotted = out.join(".");
    let lock = std::fs::File::open(dir.path()).unwrap();
    lock.lock().unwrap();
    let readers: Vec<std::process::Child> = [&out, &link, &dotted]
        .iter()
        .map(|publication| {
            command(
                &repo(),
                &[
                    "history",
                    "bookings",
                    "--period",
                    "FY2026-Q1",
                    "--publication",
                    publication.to_str().unwrap(),
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut readers = readers;
    for reader in &mut readers {
        assert!(
            reader.try_wait().unwrap().is_none(),
            "canon history did not wait for the lock"
        );
    }
    lock.unlock().unwrap();
    for reader in readers {
        let o = reader.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("waiting for the canon publish or docs in"),
            "{}",
            stderr(&o)
        );
        // 3694.46: bookings FY2026-Q1 on the fixture (flow_metrics.rs).
        assert!(stdout(&o).contains("3,694.46"), "{}", stdout(&o));
    }
}

// A period is its days in what publish judges and docs shows too: bookings
// published for FY2026-Q1 (3694.46), then D99 added and published for the
// same days written 2025-02-01..2025-05-01 (3794.46) is a restatement of a
// closed period (the fixture's books close Feb–Apr 2025); it passed
// unwarned, and the docs page listed the two labels as two periods.
#[test]
fn a_period_written_another_way_is_the_same_period() {
    let data = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("published");
    let o = publish(&repo(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    add_deal(data.path());
    let o = publish_only(
        &repo(),
        data.path(),
        &out,
        "bookings",
        &["--period", "2025-02-01..2025-05-01"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "restated closed period: `bookings` for 2025-02-01..2025-05-01 was 3,694.46 when \
             published at "
        ),
        "{}",
        stderr(&o)
    );
    let site = dir.path().join("site");
    let o = canon(
        &repo(),
        &[
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--data",
            data.path().to_str().unwrap(),
            "--publication",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(site.join("metrics/bookings.html")).unwrap();
    assert!(
        page.contains("<tr><td>2025-02-01..2025-05-01</td><td class=\"num\">3,794.46</td></tr>"),
        "{page}"
    );
    assert!(!page.contains("<tr><td>FY2026-Q1</td>"), "{page}");
}

// A row records its period's days: labels read again with a fiscal calendar
// changed since named other days. FY2026-Q1 published with the year from
// February (Feb–Apr 2025: 3694.46), then with it from March (Mar–May 2025):
// the second was judged a restatement of the first (a closed period), and
// the Feb–Apr number could no longer be found by its days.
#[test]
fn a_calendar_changed_since_does_not_move_a_published_number() {
    let (data, project, _dir, out) = published_once();
    replace_in(
        &project.path().join("canon.yaml"),
        "fiscal_year_start_month: 2\n",
        "fiscal_year_start_month: 3\n",
    );
    let signed = canon(project.path(), &["signoff", "bookings", "--by", "reviewer"]);
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    let o = publish(project.path(), data.path(), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("restated"), "{}", stderr(&o));
    // Feb–Apr, asked by its days under the new calendar: the first number.
    let feb = history_of(project.path(), &out, "2025-02-01..2025-05-01");
    let said = stdout(&feb);
    assert!(said.contains(": 1 publication(s) in "), "{said}");
    assert!(said.contains(" 3,694.46 "), "{said}");
    // FY2026-Q1 now (Mar–May): the second publication only.
    let now = history_of(project.path(), &out, "FY2026-Q1");
    let said = stdout(&now);
    assert!(said.contains(": 1 publication(s) in "), "{said}");
    assert!(!said.contains(" 3,694.46 "), "{said}");
}

// A publication by a canon that kept a block in its manifest only (no
// history row) kept it only until the next publish of another metric, and
// the number before it read as standing again. Made here by taking the
// blocked row out of the history and sealing the manifest to match.
#[test]
fn a_block_kept_in_the_manifest_only_is_carried_into_the_history() {
    let (data, project, _dir, out) = published_once();
    let sales = project.path().join("metrics/sales.yaml");
    replace_in(&sales, WON, NARROWED);
    let o = publish(project.path(), data.path(), &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // As an older canon wrote it: the history without the blocked row.
    let history_file = out.join("history.jsonl");
    let text = std::fs::read_to_string(&history_file).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains("\"blocked\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(kept.lines().count(), text.lines().count() - 1);
    std::fs::write(&history_file, &kept).unwrap();
    let manifest_file = out.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_file).unwrap()).unwrap();
    manifest["history_rows"] = kept.lines().count().into();
    manifest["history_sha256"] = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(kept.as_bytes())).into()
    };
    std::fs::write(&manifest_file, manifest.to_string()).unwrap();
    // Another metric published alone, then: bookings is still blocked.
    let o = publish_only(
        project.path(),
        data.path(),
        &out,
        "pipeline_created",
        &["--period", "FY2026-Q1"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let h = history(project.path(), &out);
    assert!(h.contains(": 2 publication(s) in "), "{h}");
    let last = h.lines().last().unwrap();
    assert!(
        last.trim_start()
            .starts_with("blocked: sign-off stale: `bookings`"),
        "{h}"
    );
}
