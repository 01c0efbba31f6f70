//! The site's HTML: one escape for every text canon did not write itself,
//! a page frame with the stylesheet inline, and the index's search (a few
//! lines of script of canon's own, no library, nothing fetched).

/// Text as HTML: `&`, `<`, `>`, `"` and `'` as entities, so a definition's
/// or a data value's text can never become markup (an account named
/// `<img src=x onerror=alert(1)>` is shown as those characters).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#0f172a}\
a{color:#1d4ed8}table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #cbd5e1;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f1f5f9}.num{text-align:right;font-variant-numeric:tabular-nums}code,pre{background:#f8fafc;padding:.1rem .3rem}\
pre{white-space:pre-wrap;padding:.6rem}.status{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;font-size:.85rem}\
.certified{background:#dcfce7}.draft{background:#fef9c3}.deprecated{background:#fee2e2}.scroll{overflow-x:auto}\
.blocked{border-left:4px solid #dc2626;background:#fef2f2;padding:.2rem .8rem;margin:.5rem 0 1rem}\
#search{font-size:1rem;padding:.4rem;width:100%;max-width:30rem;margin:1rem 0}li.metric{margin:.6rem 0}li.hidden{display:none}";

/// A whole page: `title` escaped here, `body` already HTML.
pub fn page(title: &str, body: &str, script: Option<&str>) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
<title>{}</title><style>{STYLE}</style></head><body>\n{body}\n{}</body></html>\n",
        escape(title),
        script
            .map(|s| format!("<script>{s}</script>\n"))
            .unwrap_or_default()
    )
}

/// The index's search: keeps the metrics whose text holds every word typed
/// (or given as `?q=` in the address, so a link can carry a search).
pub const SEARCH: &str = "(function(){\
var box=document.getElementById('search');\
var items=Array.prototype.slice.call(document.querySelectorAll('li.metric'));\
var count=document.getElementById('count');\
function apply(){var words=box.value.toLowerCase().split(/\\s+/).filter(function(w){return w.length>0;});\
var shown=0;items.forEach(function(li){var text=li.getAttribute('data-search');\
var keep=words.every(function(w){return text.indexOf(w)>=0;});li.classList.toggle('hidden',!keep);if(keep){shown++;}});\
count.textContent=shown+' of '+items.length+' metrics';}\
var q=new URLSearchParams(window.location.search).get('q');if(q){box.value=q;}\
box.addEventListener('input',apply);apply();})();";

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn every_markup_character_is_an_entity() {
        assert_eq!(
            escape("<img src=x onerror=alert(1)> & \"q\" 'a'"),
            "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot; &#39;a&#39;"
        );
    }
}
