//! Markdown preview: a note body rendered as HTML that is safe to put into
//! the page with `innerHTML`.
//!
//! Bodies are written by the person, but also arrive through sync and import
//! files, so they are untrusted. Promises of [`to_safe_html`]:
//! - raw HTML in the body (blocks and inline tags) is shown as text, never
//!   interpreted: there is no way to write an element, attribute or script;
//! - links keep only the schemes `http`, `https` and `mailto`, or no scheme
//!   (relative, `#anchor`); images only `http` and `https`. Anything else
//!   (`javascript:`, `data:`, `vbscript:`, ...) drops the link or image and
//!   keeps its text. Schemes are read the way browsers read them: case-blind
//!   and ignoring the tabs, line breaks and leading spaces a browser strips;
//! - text and attribute values are escaped by pulldown-cmark's HTML writer.
//!
//! pulldown-cmark: CommonMark-compliant, pull-parser (events we can filter,
//! which is what makes the sanitising above a small, total function), no
//! dependencies with `default-features = false` apart from its escaper.

use pulldown_cmark::{html, Event, Options, Parser, Tag, TagEnd};

/// Whether a link target may be followed from the preview.
fn safe_url(url: &str, image: bool) -> bool {
    // Browsers drop ASCII tabs and line breaks anywhere in a URL and trim
    // leading C0 controls and spaces, so "java\tscript:" is "javascript:".
    let cleaned: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let scheme_end = cleaned.find([':', '/', '?', '#']);
    match scheme_end {
        Some(i) if cleaned[i..].starts_with(':') => {
            let scheme = cleaned[..i].to_ascii_lowercase();
            if image {
                matches!(scheme.as_str(), "http" | "https")
            } else {
                matches!(scheme.as_str(), "http" | "https" | "mailto")
            }
        }
        // No scheme: relative to the page, or a fragment.
        _ => true,
    }
}

/// Renders `body` as sanitised HTML (see the module doc).
pub fn to_safe_html(body: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // Per open link or image, whether it was dropped (so its end is too).
    let mut links: Vec<bool> = Vec::new();
    let mut images: Vec<bool> = Vec::new();
    let events = Parser::new_ext(body, options).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link { ref dest_url, .. }) => {
            let keep = safe_url(dest_url, false);
            links.push(keep);
            keep.then_some(event)
        }
        Event::End(TagEnd::Link) => links.pop().unwrap_or(false).then_some(event),
        Event::Start(Tag::Image { ref dest_url, .. }) => {
            let keep = safe_url(dest_url, true);
            images.push(keep);
            keep.then_some(event)
        }
        Event::End(TagEnd::Image) => images.pop().unwrap_or(false).then_some(event),
        // Text between a dropped image's start and end is its alt text and
        // is shown as text: the default below.
        other => Some(other),
    });
    let mut out = String::with_capacity(body.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ordinary_markdown() {
        let html = to_safe_html("# Title\n\nSome *emphasis* and `code`.\n\n- [x] done\n- item");
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<em>emphasis</em>"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
        assert!(html.contains("<li>"), "{html}");
        assert!(html.contains("checkbox"), "{html}");
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let html =
            to_safe_html("<script>alert(1)</script>\n\nhi <img src=x onerror=alert(1)> there");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }

    #[test]
    fn unsafe_link_schemes_are_dropped_keeping_the_text() {
        for url in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "java\tscript:alert(1)",
            " javascript:alert(1)",
            "vbscript:x",
            "data:text/html,<b>x</b>",
        ] {
            let html = to_safe_html(&format!("[click me](<{url}>)"));
            assert!(!html.contains("<a"), "{url}: {html}");
            assert!(html.contains("click me"), "{url}: {html}");
        }
        let html = to_safe_html(
            "[ok](https://example.com/a?b=\"c\") [mail](mailto:a@b.c) [rel](/notes#x)",
        );
        assert!(
            html.contains(r#"<a href="https://example.com/a?b=%22c%22">ok</a>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<a href="mailto:a@b.c">mail</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"<a href="/notes#x">rel</a>"#), "{html}");
        // An autolink is a link too.
        assert!(!to_safe_html("<javascript:alert(1)>").contains("<a"));
    }

    #[test]
    fn unsafe_images_keep_their_alt_text_only() {
        let html = to_safe_html("![a cat](javascript:alert(1)) ![b](data:image/png;base64,AAAA)");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("a cat"), "{html}");
        let ok = to_safe_html("![pic](https://example.com/p.png)");
        assert!(
            ok.contains(r#"<img src="https://example.com/p.png" alt="pic""#),
            "{ok}"
        );
        // A safe link around an unsafe image: the link stays, the image goes.
        let nested = to_safe_html("[![x](javascript:1)](https://e.com)");
        assert!(
            nested.contains(r#"<a href="https://e.com">x</a>"#),
            "{nested}"
        );
    }

    #[test]
    fn attribute_values_cannot_break_out() {
        let html = to_safe_html(r#"[x](https://e.com "t\" onmouseover=\"alert(1)")"#);
        assert!(!html.contains("\" onmouseover"), "{html}");
    }
}
