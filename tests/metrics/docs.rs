//! `canon docs` through the real binary (the browser checks are
//! .ci/docs_browser_test.py, run by .ci/run in headless Chromium): a page
//! per metric and an index, every text escaped, the site's folder claimed
//! only when it is new, empty or an earlier site.

use crate::common::*;

#[test]
fn the_site_has_a_page_per_metric_and_escapes_every_text() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let payload = "<img src=x onerror=alert(1)>";
    let sales = project.path().join("metrics/sales.yaml");
    let text = std::fs::read_to_string(&sales).unwrap();
    let at = text.find("  - name: new_business_share").unwrap();
    let edited = format!(
        "{}{}",
        &text[..at],
        text[at..].replacen(
            "owner: Sales Operations",
            &format!("owner: \"{payload}\""),
            1
        )
    );
    std::fs::write(&sales, edited).unwrap();
    let out = tempfile::tempdir().unwrap();
    let site = out.path().join("site");
    let data = repo().join("sample_data");
    let o = canon(
        project.path(),
        &[
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // 21 metrics and the index.
    assert!(
        stdout(&o).starts_with("wrote 22 page(s) to "),
        "{}",
        stdout(&o)
    );
    let page = std::fs::read_to_string(site.join("metrics/new_business_share.html")).unwrap();
    assert!(!page.contains("<img"), "the payload became markup");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(!index.contains("<img"));
    assert_eq!(index.matches("<li class=\"metric\"").count(), 21);
    // No network: nothing is fetched from anywhere.
    for p in [&page, &index] {
        assert!(!p.contains("http://") || p.contains("http://www.w3.org/2000/svg"));
        assert!(!p.contains("https://"), "a page names a remote resource");
    }
    let bookings = std::fs::read_to_string(site.join("metrics/bookings.html")).unwrap();
    assert!(
        bookings.contains("<svg class=\"lineage\""),
        "no lineage diagram"
    );
    // Not published: the pages say so.
    assert!(bookings.contains("Not published yet."));
    // Written again over itself; refused over someone else's folder.
    let again = canon(
        project.path(),
        &[
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let other = out.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let refused = canon(
        project.path(),
        &[
            "docs",
            "--out",
            other.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("not a canon docs site (no .canon-docs)"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "mine"
    );
}

// A metric whose latest publication blocked it showed the number published
// before as if it still stood; and after a later `publish --only` that left
// it out, not even the manifest said so. The page says it was blocked, for
// which periods, when and why, from the history's blocked row.
#[test]
fn a_page_says_when_the_latest_publication_blocked_its_metric() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let data = repo().join("sample_data");
    let data = data.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let publication = out.path().join("pub");
    let publication = publication.to_str().unwrap();
    let publish = |only: &str, code: i32| {
        let o = canon(
            project.path(),
            &[
                "publish",
                "--only",
                only,
                "--period",
                "FY2026-Q1",
                "--data",
                data,
                "--out",
                publication,
            ],
        );
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    };
    publish("bookings", 0);
    // Its definition changed after its sign-off: blocked in every period.
    replace_in(
        &project.path().join("metrics/sales.yaml"),
        "    filter: is_won\n",
        "    filter: is_won AND amount >= 1000\n",
    );
    publish("bookings", 1);
    // A later publication of another metric only.
    publish("nrr", 0);
    let site = out.path().join("site");
    let o = canon(
        project.path(),
        &[
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--data",
            data,
            "--publication",
            publication,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(site.join("metrics/bookings.html")).unwrap();
    let blocked = page
        .find("<strong>Blocked when last published</strong>")
        .unwrap_or_else(|| panic!("not said blocked: {page}"));
    let reasons = &page[blocked..page[blocked..].find("</div>").unwrap() + blocked];
    assert!(
        reasons.contains("<tr><td>FY2026-Q1</td><td>20"),
        "{reasons}"
    );
    assert!(reasons.contains("sign-off"), "{reasons}");
    // The number of the first publication is still listed, as older.
    assert!(page.contains("(the values below are older)"), "{page}");
    // The latest publication (nrr's) left it out: its inputs section says
    // so, not "Not published yet" under a published number.
    assert!(
        page.contains("<p>Not in the latest publication: the numbers above were published earlier"),
        "{page}"
    );
    assert!(!page.contains("Not published yet"), "{page}");
    // An unblocked metric's page says nothing of the kind.
    let other = std::fs::read_to_string(site.join("metrics/nrr.html")).unwrap();
    assert!(!other.contains("Blocked when last published"));
    // Its inputs at its latest publication, read from the publication's
    // lineage.jsonl (the manifest's entries no longer carry the lineage).
    assert!(
        other.contains(&format!(
            "<tr><td>billing/subscription</td><td><code>{data}/billing/subscription/part-00000.parquet</code></td>"
        )),
        "{other}"
    );
}

// A conversion whose 90-day window has not closed by the sample's extract
// (FY2026-Q4: it closes 2026-05-02) has no final value: publish records it
// as pending and exits 0, its history row says pending, and its page says
// it had no final value, not that it was blocked. FY2026-Q2's window closed
// (2025-10-30): published, 0.439376 (366 / 833 persons).
#[test]
fn a_conversion_with_an_open_window_is_pending_not_blocked() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let data = repo().join("sample_data");
    let data = data.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let publication = out.path().join("pub");
    let publication = publication.to_str().unwrap();
    let o = canon(
        project.path(),
        &[
            "publish",
            "--only",
            "mql_to_sql_rate",
            "--period",
            "FY2026-Q2",
            "--period",
            "FY2026-Q4",
            "--data",
            data,
            "--out",
            publication,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("published 1 metric result(s) (1 more pending"),
        "{}",
        stdout(&o)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("pub/manifest.json")).unwrap())
            .unwrap();
    let entries = manifest["metrics"].as_array().unwrap();
    assert_eq!(entries[0]["period"], "FY2026-Q2");
    assert_eq!(entries[0]["value"], "0.439376");
    assert_eq!(entries[1]["period"], "FY2026-Q4");
    assert_eq!(entries[1]["status"], "pending");
    assert!(entries[1].get("value").is_none());
    let reason = entries[1]["reason"].as_str().unwrap();
    assert!(reason.contains("is open until 2026-05-02"), "{reason}");
    let history = canon(
        project.path(),
        &[
            "history",
            "mql_to_sql_rate",
            "--period",
            "FY2026-Q4",
            "--publication",
            publication,
        ],
    );
    assert_eq!(history.status.code(), Some(0), "{}", stderr(&history));
    assert!(
        stdout(&history).contains(" pending\n"),
        "{}",
        stdout(&history)
    );
    // Its reason is under it as pending's, not as a block's.
    assert!(
        stdout(&history).contains(" pending: `mql_to_sql_rate` has no final value")
            && !stdout(&history).contains("blocked:"),
        "{}",
        stdout(&history)
    );
    let site = out.path().join("site");
    let o = canon(
        project.path(),
        &[
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--data",
            data,
            "--publication",
            publication,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(site.join("metrics/mql_to_sql_rate.html")).unwrap();
    assert!(
        page.contains("<strong>No final value when last published</strong>"),
        "{page}"
    );
    assert!(!page.contains("Blocked when last published"), "{page}");
}

// A publication of fiscal quarters and a month: the chart drew the month's
// bar between the quarters' (8.8 M, 3.4 M, 12.5 M read as a dip). Bars are
// of the latest period's kind; the month is listed under them.
#[test]
fn a_page_draws_one_kind_of_period() {
    let data = repo().join("sample_data");
    let out = tempfile::tempdir().unwrap();
    let publication = out.path().join("pub");
    let o = canon(
        &repo(),
        &[
            "publish",
            "--only",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--period",
            "2025-03",
            "--period",
            "FY2026-Q2",
            "--data",
            data.to_str().unwrap(),
            "--out",
            publication.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let site = out.path().join("site");
    let o = canon(
        &repo(),
        &[
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--publication",
            publication.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(site.join("metrics/bookings.html")).unwrap();
    // Bookings: FY2026-Q1 8,783,667.28, FY2026-Q2 12,516,016.46, 2025-03
    // 3,383,399.87 (inside Q1).
    assert!(
        page.contains("<tr><td>FY2026-Q1</td><td class=\"num\">8,783,667.28</td></tr>\n<tr><td>FY2026-Q2</td><td class=\"num\">12,516,016.46</td></tr>"),
        "{page}"
    );
    assert!(!page.contains("<tr><td>2025-03</td>"), "{page}");
    assert!(
        page.contains("<p>Also published, periods of other kinds (not drawn beside these): 2025-03 (month): 3,383,399.87.</p>"),
        "{page}"
    );
}

/// `canon docs --out SITE --data <sample>` over `project`, with `env`.
fn docs(
    project: &std::path::Path,
    site: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    let data = repo().join("sample_data");
    canon_with_env(
        project,
        &[
            "docs",
            "--out",
            site.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        env,
    )
}

/// How many metric pages `site` holds, with its index and marker there.
fn whole_site(site: &std::path::Path) -> usize {
    assert!(site.join("index.html").is_file(), "no index");
    assert!(site.join(".canon-docs").is_file(), "no marker");
    std::fs::read_dir(site.join("metrics")).unwrap().count()
}

// The site is built beside --out and switched in whole. A run killed while
// it wrote a first site left a folder of a few pages, no index and no
// marker, which every later run refused; killed over an earlier site, old
// and new pages mixed. Now a kill at any step leaves no site, or one site
// whole: all its pages and its index from the same run.
#[test]
fn a_killed_docs_run_leaves_no_half_site() {
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let out = tempfile::tempdir().unwrap();
    let site = out.path().join("site");
    // Each kill leaves a staging folder the next run sweeps (one more step):
    // swept here first, so the steps are those of a clean run: 1 the staging
    // folder, 2 its marker, 3..24 the index and 21 pages, 25 the marker's
    // list of pages, 26 synced, 27 exchanged, 28 the parent synced.
    let sweep = || {
        for entry in std::fs::read_dir(out.path()).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".site.tmp-")
            {
                std::fs::remove_dir_all(path).unwrap();
            }
        }
    };
    let kill = |step: &str| {
        sweep();
        let killed = docs(
            project.path(),
            &site,
            &[("CANON_FAULT_KILL_AFTER_STEP", step)],
        );
        assert_eq!(killed.status.code(), Some(137), "{}", stderr(&killed));
        assert!(stderr(&killed).contains(&format!("killed after step {step} ")));
    };
    for step in ["1", "2", "12", "26"] {
        kill(step);
        assert!(
            !site.exists(),
            "a first site killed at step {step} left {site:?}"
        );
    }
    sweep();
    let first = docs(project.path(), &site, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(whole_site(&site), 21);
    // The second run's site differs in its index (the project's name) and in
    // one page (bookings' owner), so a mixed site shows.
    let second = |on: bool| {
        let names = ["name: ", "name: Renamed "];
        let owners = ["owner: Sales Operations", "owner: Revenue Operations"];
        let (from, to) = if on { (0, 1) } else { (1, 0) };
        replace_in(&project.path().join("canon.yaml"), names[from], names[to]);
        replace_in(
            &project.path().join("metrics/sales.yaml"),
            owners[from],
            owners[to],
        );
    };
    second(true);
    let which = || {
        let index = std::fs::read_to_string(site.join("index.html")).unwrap();
        let page = std::fs::read_to_string(site.join("metrics/bookings.html")).unwrap();
        (
            index.contains("Renamed "),
            page.contains("owner Revenue Operations"),
        )
    };
    assert_eq!(which(), (false, false));
    for (step, new) in [
        ("12", false),
        ("25", false),
        ("26", false),
        ("27", true),
        ("28", true),
    ] {
        if new {
            // Back to the first site, so each kill starts from it.
            sweep();
            second(false);
            assert_eq!(docs(project.path(), &site, &[]).status.code(), Some(0));
            second(true);
        }
        kill(step);
        assert_eq!(whole_site(&site), 21, "after a kill at step {step}");
        assert_eq!(
            which(),
            (new, new),
            "a mixed site after a kill at step {step}"
        );
    }
}

// Pages of a metric since removed went on saying "certified" with their
// last numbers; a site is now replaced whole. A page the user added, even
// one named like canon's, a site of an older canon (no list of its pages),
// or a link in a site (to the project's definitions, say) are canon's to
// neither delete nor write through: refused, left as they were. The new
// site keeps the old folder's mode.
#[test]
fn a_site_is_replaced_whole_and_never_written_through() {
    use std::os::unix::fs::PermissionsExt;
    let project = tempfile::tempdir().unwrap();
    copy_project(project.path());
    let out = tempfile::tempdir().unwrap();
    let site = out.path().join("site");
    assert_eq!(docs(project.path(), &site, &[]).status.code(), Some(0));
    assert!(site.join("metrics/open_tickets.html").is_file());
    // open_tickets removed from the catalog: its page goes with the old site.
    std::fs::remove_file(project.path().join("metrics/support.yaml")).unwrap();
    std::fs::set_permissions(&site, std::fs::Permissions::from_mode(0o2770)).unwrap();
    let again = docs(project.path(), &site, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(!site.join("metrics/open_tickets.html").exists());
    assert_eq!(whole_site(&site), 20);
    let mode = std::fs::metadata(&site).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o2770, "the site's mode was {mode:o}");

    let refused = |what: &str, said: &str| {
        let o = docs(project.path(), &site, &[]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        assert!(stderr(&o).contains(said), "{what}: {}", stderr(&o));
    };
    std::fs::write(site.join("metrics/my_notes.html"), "mine").unwrap();
    refused(
        "a page by hand",
        "it holds metrics/my_notes.html, which canon docs did not write",
    );
    assert_eq!(
        std::fs::read_to_string(site.join("metrics/my_notes.html")).unwrap(),
        "mine"
    );
    std::fs::remove_file(site.join("metrics/my_notes.html")).unwrap();

    let marker = site.join(".canon-docs");
    let listed = std::fs::read_to_string(&marker).unwrap();
    std::fs::write(
        &marker,
        "a canon docs site: canon docs --out writes over it\n",
    )
    .unwrap();
    refused(
        "an older canon's site",
        "lists no pages (a site of an older canon",
    );
    std::fs::write(&marker, listed).unwrap();

    // The pages' folder replaced by a link into the project's definitions.
    std::fs::remove_dir_all(site.join("metrics")).unwrap();
    std::os::unix::fs::symlink(project.path().join("metrics"), site.join("metrics")).unwrap();
    refused("a link", "it holds metrics, a link canon does not write");
    assert!(site.join("metrics").is_symlink());
}
