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
        stderr(&refused).contains("is not a canon docs site"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "mine"
    );
}
