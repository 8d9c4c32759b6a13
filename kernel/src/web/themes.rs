//! Themes: white-label skins a reseller or tenant picks without touching
//! code.
//!
//! A theme is a folder (`themes/NAME/`): `theme.toml` (product name,
//! colours, fonts, logo, support contacts, footer, layout touches), an
//! optional CSS file and optional template overrides. A template a theme
//! does not override comes from `themes/default`, template by template.
//!
//! Themes load once at start: the shipped ones from the binary (so it serves
//! its UI wherever it runs) and a reseller's from `themes_dir`. A theme that
//! fails any check (unreadable manifest, template syntax error, a variable
//! no page provides, colours below WCAG AA contrast, a missing file) is
//! reported with its file and line and left out; tenants set to it get the
//! default theme meanwhile, so a bad theme never takes the UI down.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped_themes.rs"));
}

/// The theme every other falls back to.
pub const DEFAULT: &str = "default";

/// Instructions one page render may take.
const FUEL: u64 = 20_000_000;

/// What a theme's templates may not contain: ways around escaping, and
/// markup that sends the page elsewhere (the CSP does not stop navigation).
const FORBIDDEN: &[(&str, &str)] = &[
    ("autoescape", "turning escaping off is not allowed"),
    (
        "http-equiv",
        "<meta http-equiv> is not allowed (a refresh could send the page elsewhere)",
    ),
    ("<base", "<base> is not allowed"),
    ("<iframe", "frames are not allowed"),
    ("<object", "embedded objects are not allowed"),
    ("<embed", "embedded objects are not allowed"),
    ("http://", "links and resources must stay on this site"),
    ("https://", "links and resources must stay on this site"),
    ("//cdn", "links and resources must stay on this site"),
];

/// The variables every template may use. Page data lives under `page`, so a
/// theme cannot come to depend on a name a page does not provide.
const CONTEXT: &[&str] = &["theme", "ui", "page"];

/// The pages, and the keys each gives its template under `page`. A template
/// naming another key is refused at load.
pub const PAGES: &[(&str, &[&str])] = &[
    (
        "login.html",
        &["title", "email", "errors", "next", "notice", "workspace"],
    ),
    (
        "password_reset.html",
        &["title", "email", "errors", "sent", "workspace"],
    ),
    (
        "password_reset_confirm.html",
        &["title", "token", "errors", "kind"],
    ),
    (
        "profile.html",
        &[
            "title",
            "user",
            "mfa_enabled",
            "enrolment",
            "errors",
            "recovery_codes",
            "sessions",
        ],
    ),
    (
        "dashboard.html",
        &[
            "title",
            "pipelines",
            "pipeline_chart",
            "won_chart",
            "forecast",
            "due",
            "currency",
            "widgets",
        ],
    ),
    (
        "list.html",
        &[
            "title",
            "object",
            "columns",
            "rows",
            "next_cursor",
            "search",
            "filters",
            "sort",
            "sorts",
            "views",
            "view",
            "fields",
            "errors",
            "can_create",
            "can_export",
            "bulk",
            "query",
            "total",
        ],
    ),
    (
        "detail.html",
        &[
            "title",
            "object",
            "record",
            "fields",
            "timeline",
            "related",
            "panels",
            "tree",
            "relations",
            "can_edit",
            "can_delete",
            "merges",
            "actions",
        ],
    ),
    (
        "form.html",
        &[
            "title",
            "object",
            "record_id",
            "fields",
            "errors",
            "version",
            "action",
            "cancel",
        ],
    ),
    (
        "board.html",
        &["title", "pipelines", "pipeline", "columns", "currency"],
    ),
    (
        "settings.html",
        &[
            "title", "section", "sections", "rows", "columns", "items", "form", "errors", "notice",
        ],
    ),
    ("imports.html", &["title", "objects", "imports", "errors"]),
    (
        "import.html",
        &[
            "title",
            "import",
            "running",
            "errors",
            "columns",
            "targets",
            "can_start",
            "rejects",
        ],
    ),
    (
        "duplicates.html",
        &["title", "object", "record", "candidates", "can_merge"],
    ),
    (
        "merge.html",
        &[
            "title",
            "object",
            "action",
            "records",
            "rows",
            "undo_days",
            "errors",
        ],
    ),
    (
        "bulk_action.html",
        &["title", "action", "running", "list", "restorable"],
    ),
    (
        "duplicate_queue.html",
        &["title", "path", "tabs", "pairs", "notice", "can_merge"],
    ),
    (
        "object_list.html",
        &[
            "title",
            "object",
            "columns",
            "rows",
            "next_cursor",
            "filters",
            "sort",
            "fields",
            "errors",
        ],
    ),
    (
        "object_detail.html",
        &["title", "object", "record", "fields", "meta", "panels"],
    ),
    ("error.html", &["title", "status", "message"]),
];

/// Templates that pages include or import: they see whatever the page that
/// uses them sees.
const PARTIAL_PREFIXES: &[&str] = &["base.html", "macros.html", "partials/"];

/// What `theme.toml` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The theme's own name, shown to admins choosing one.
    pub name: String,
    /// The product name users see (page titles, header, emails).
    pub product_name: String,
    /// File names inside the theme folder.
    #[serde(default)]
    pub logo: Option<String>,
    #[serde(default)]
    pub favicon: Option<String>,
    /// Extra CSS, served after the default theme's base styles.
    #[serde(default)]
    pub css: Option<String>,
    pub colors: Colors,
    #[serde(default)]
    pub fonts: Fonts,
    #[serde(default)]
    pub support: Support,
    /// Shown at the foot of every page (plain text).
    #[serde(default)]
    pub footer: Option<String>,
    #[serde(default)]
    pub layout: Layout,
    /// Slugs of the resellers whose tenants may choose this theme (a
    /// reseller's own brand); empty: every tenant may.
    #[serde(default)]
    pub resellers: Vec<String>,
}

/// Design tokens: CSS colours (`#rrggbb`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colors {
    pub primary: String,
    /// Text on `primary` (buttons, the header when `header = "primary"`).
    pub on_primary: String,
    pub accent: String,
    pub background: String,
    pub surface: String,
    pub text: String,
    /// Secondary text on `surface`.
    pub muted: String,
    pub border: String,
    pub danger: String,
    pub success: String,
    /// Series colours of the dashboard's charts.
    #[serde(default)]
    pub chart: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fonts {
    /// CSS font stacks (system fonts: the UI loads none from elsewhere).
    pub body: String,
    pub heading: String,
}

impl Default for Fonts {
    fn default() -> Self {
        let stack = "system-ui, -apple-system, \"Segoe UI\", Roboto, sans-serif".to_owned();
        Fonts {
            body: stack.clone(),
            heading: stack,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Support {
    pub email: Option<String>,
    pub url: Option<String>,
}

/// Layout touches a theme may make without overriding templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// `side` (a sidebar) or `top` (a bar across the top).
    pub nav: String,
    /// Corner radius of cards and buttons, in pixels.
    pub radius: u8,
    /// `comfortable` or `compact` tables.
    pub density: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            nav: "side".to_owned(),
            radius: 6,
            density: "comfortable".to_owned(),
        }
    }
}

/// A file a theme serves (logo, favicon, styles).
#[derive(Debug)]
pub struct Asset {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// A loaded, checked theme.
pub struct Theme {
    /// The folder name: what tenants and resellers are set to.
    pub key: String,
    pub manifest: Manifest,
    env: Environment<'static>,
    assets: HashMap<String, Asset>,
    /// Changes whenever any served file changes (cache busting).
    pub version: String,
}

impl fmt::Debug for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Theme").field("key", &self.key).finish()
    }
}

/// What is wrong with a theme, and where.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub theme: String,
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}/{}:{l}: {}", self.theme, self.file, self.message),
            None => write!(f, "{}/{}: {}", self.theme, self.file, self.message),
        }
    }
}

/// A theme's files by path inside its folder.
type Files = BTreeMap<String, Vec<u8>>;

impl Theme {
    /// Whether a tenant of `reseller` (a slug; none: the platform's own)
    /// may choose this theme.
    pub fn available_to(&self, reseller: Option<&str>) -> bool {
        self.manifest.resellers.is_empty()
            || reseller.is_some_and(|r| self.manifest.resellers.iter().any(|x| x == r))
    }

    /// Renders a template of this theme.
    pub fn render(&self, name: &str, ctx: minijinja::Value) -> std::result::Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| describe(&self.key, &e))
    }

    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.get(name)
    }

    /// What templates see as `theme`.
    pub fn context(&self) -> serde_json::Value {
        let m = &self.manifest;
        serde_json::json!({
            "key": self.key,
            "name": m.name,
            "product_name": m.product_name,
            "support": m.support,
            "footer": m.footer,
            "layout": m.layout,
            "colors": m.colors,
            "has_logo": m.logo.is_some(),
            "has_favicon": m.favicon.is_some(),
            "version": self.version,
        })
    }

    /// Builds and checks a theme from its files, over the default theme's.
    fn build(key: &str, files: &Files, base: &Files) -> std::result::Result<Theme, Vec<Problem>> {
        let problem = |file: &str, line: Option<usize>, message: String| Problem {
            theme: key.to_owned(),
            file: file.to_owned(),
            line,
            message,
        };
        let mut problems = Vec::new();
        let Some(raw) = files.get("theme.toml") else {
            return Err(vec![problem("theme.toml", None, "missing".to_owned())]);
        };
        let text = String::from_utf8_lossy(raw);
        let manifest: Manifest = match toml::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                let line = e.span().map(|s| line_of(&text, s.start));
                return Err(vec![problem("theme.toml", line, e.message().to_owned())]);
            }
        };
        check_manifest(&manifest, &text, &mut |line, msg| {
            problems.push(problem("theme.toml", line, msg))
        });

        let mut assets = HashMap::new();
        for (field, file) in [
            ("logo", &manifest.logo),
            ("favicon", &manifest.favicon),
            ("css", &manifest.css),
        ] {
            let Some(file) = file else { continue };
            if file.contains("..") || file.starts_with('/') || file.starts_with("templates/") {
                problems.push(problem(
                    "theme.toml",
                    find_line(&text, field),
                    format!("`{field}` must name a file inside the theme folder"),
                ));
                continue;
            }
            match (files.get(file.as_str()), content_type(file)) {
                (None, _) => problems.push(problem(
                    "theme.toml",
                    find_line(&text, field),
                    format!("`{field}` names `{file}`, which is not in the theme folder"),
                )),
                (_, None) => problems.push(problem(
                    file,
                    None,
                    "unsupported file type (use .svg, .png, .ico or .css)".to_owned(),
                )),
                (Some(bytes), Some(ct)) => {
                    assets.insert(
                        field.to_owned(),
                        Asset {
                            bytes: bytes.clone(),
                            content_type: ct,
                        },
                    );
                }
            }
        }

        // Templates: the default's, overlaid with this theme's own.
        let mut sources: BTreeMap<String, String> = BTreeMap::new();
        for (path, bytes) in base.iter().chain(files.iter()) {
            if let Some(name) = path
                .strip_prefix("templates/")
                .filter(|n| n.ends_with(".html") || n.ends_with(".svg"))
            {
                if !base.contains_key(path) {
                    problems.push(problem(
                        path,
                        None,
                        "the default theme has no such template to override".to_owned(),
                    ));
                    continue;
                }
                match String::from_utf8(bytes.clone()) {
                    Ok(s) => {
                        sources.insert(name.to_owned(), s);
                    }
                    Err(_) => problems.push(problem(path, None, "not UTF-8".to_owned())),
                }
            }
        }
        let mut env = environment();
        for (name, source) in &sources {
            if let Err(e) = env.add_template_owned(name.clone(), source.clone()) {
                problems.push(problem(
                    &format!("templates/{name}"),
                    e.line(),
                    e.detail().unwrap_or("template error").to_owned(),
                ));
            }
        }
        for (name, source) in &sources {
            let Ok(template) = env.get_template(name) else {
                continue;
            };
            let allowed: Option<HashSet<&str>> = PAGES
                .iter()
                .find(|(page, _)| page == name)
                .map(|(_, keys)| keys.iter().copied().collect());
            let is_partial = PARTIAL_PREFIXES.iter().any(|p| name.starts_with(p));
            if allowed.is_none() && !is_partial {
                problems.push(problem(
                    &format!("templates/{name}"),
                    None,
                    "not a page the UI renders, nor base.html, macros.html or partials/".to_owned(),
                ));
                continue;
            }
            let lower = source.to_ascii_lowercase();
            for (needle, why) in FORBIDDEN {
                if let Some(at) = lower.find(needle) {
                    problems.push(problem(
                        &format!("templates/{name}"),
                        Some(line_of(source, at)),
                        (*why).to_owned(),
                    ));
                }
            }
            // Filters resolve when a page renders; try each one the
            // template names now, so a misspelt filter fails the theme at
            // load rather than a page later.
            for filter in filters_named(source) {
                if filter == "safe" {
                    problems.push(problem(
                        &format!("templates/{name}"),
                        find_line(source, "|safe").or_else(|| find_line(source, "safe")),
                        "`safe` is not allowed: every value is escaped".to_owned(),
                    ));
                    continue;
                }
                let probe = format!("{{{{ none|{filter} }}}}");
                if let Err(e) = env.render_str(&probe, minijinja::context! {})
                    && e.kind() == minijinja::ErrorKind::UnknownFilter
                {
                    problems.push(problem(
                        &format!("templates/{name}"),
                        find_line(source, &format!("|{filter}"))
                            .or_else(|| find_line(source, &filter)),
                        format!("unknown filter `{filter}`"),
                    ));
                }
            }
            let mut unknown: Vec<String> = template
                .undeclared_variables(true)
                .into_iter()
                .filter(|path| {
                    let mut parts = path.split('.');
                    let top = parts.next().unwrap_or("");
                    if env.globals().any(|(g, _)| g == top) {
                        return false;
                    }
                    if !CONTEXT.contains(&top) {
                        return true;
                    }
                    match (top, parts.next(), &allowed) {
                        ("page", Some(key), Some(keys)) => !keys.contains(key),
                        _ => false,
                    }
                })
                .collect();
            unknown.sort();
            for var in unknown {
                let last = var.rsplit('.').next().unwrap_or(&var);
                problems.push(problem(
                    &format!("templates/{name}"),
                    find_line(source, last),
                    format!("unknown variable `{var}`"),
                ));
            }
        }

        // Styles: generated tokens, the default's base styles, the theme's own.
        let mut css = tokens_css(&manifest);
        if let Some(base_css) = base.get("base.css") {
            css.push_str(&String::from_utf8_lossy(base_css));
        }
        if let Some(own) = assets.remove("css") {
            css.push('\n');
            css.push_str(&String::from_utf8_lossy(&own.bytes));
        }
        assets.insert(
            "style.css".to_owned(),
            Asset {
                bytes: css.into_bytes(),
                content_type: "text/css; charset=utf-8",
            },
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut hash = Sha256::new();
        for (name, a) in &assets {
            hash.update(name.as_bytes());
            hash.update(&a.bytes);
        }
        for (name, s) in &sources {
            hash.update(name.as_bytes());
            hash.update(s.as_bytes());
        }
        let version = hash
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Theme {
            key: key.to_owned(),
            manifest,
            env,
            assets,
            version,
        })
    }
}

/// The template environment every theme shares: strict about printing or
/// reaching into undefined values (a typo fails instead of rendering blank;
/// `if` on a missing value is simply false), HTML auto-escaping for `.html`
/// and `.svg`, `none` printed as nothing, and the UI's filters.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // A page renders in well under this; a theme looping without end is
    // stopped (and the default theme serves the page).
    env.set_fuel(Some(FUEL));
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") || name.ends_with(".svg") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    crate::web::filters::register(&mut env);
    env
}

/// A template error as one line: file, line and what is wrong.
fn describe(theme: &str, e: &minijinja::Error) -> String {
    let mut s = format!("{theme}/templates/{}", e.name().unwrap_or("?"));
    if let Some(l) = e.line() {
        s.push_str(&format!(":{l}"));
    }
    s.push_str(": ");
    s.push_str(e.detail().unwrap_or(&e.kind().to_string()));
    s
}

/// The filter names a template applies (`value|name`), inside its tags.
fn filters_named(source: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut rest = source;
    while let Some(start) = rest.find(['{']) {
        rest = &rest[start + 1..];
        let close = match rest.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => continue,
        };
        let Some(end) = rest.find(close) else { break };
        let tag = &rest[..end];
        rest = &rest[end..];
        let mut in_string: Option<char> = None;
        let chars: Vec<char> = tag.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match in_string {
                Some(q) if c == q => in_string = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => in_string = Some(c),
                None if c == '|' => {
                    let name: String = chars[i + 1..]
                        .iter()
                        .skip_while(|c| c.is_whitespace())
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                        .collect();
                    if !name.is_empty() {
                        names.insert(name);
                    }
                }
                None => {}
            }
            i += 1;
        }
    }
    names
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The first line mentioning `needle`, for pointing at a problem.
fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.find(needle).map(|i| line_of(text, i))
}

fn content_type(file: &str) -> Option<&'static str> {
    let ext = file.rsplit('.').next()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "css" => "text/css; charset=utf-8",
        _ => return None,
    })
}

/// Checks colours (valid, and readable at WCAG 2.1 AA: 4.5:1 for text) and
/// the layout's choices.
fn check_manifest(m: &Manifest, text: &str, report: &mut dyn FnMut(Option<usize>, String)) {
    let c = &m.colors;
    let named = [
        ("primary", &c.primary),
        ("on_primary", &c.on_primary),
        ("accent", &c.accent),
        ("background", &c.background),
        ("surface", &c.surface),
        ("text", &c.text),
        ("muted", &c.muted),
        ("border", &c.border),
        ("danger", &c.danger),
        ("success", &c.success),
    ];
    let mut rgb = HashMap::new();
    for (name, value) in named {
        match parse_hex(value) {
            Some(v) => {
                rgb.insert(name, v);
            }
            None => report(
                find_line(text, &format!("{name} ")).or_else(|| find_line(text, name)),
                format!("colors.{name} must be a #rrggbb colour, not `{value}`"),
            ),
        }
    }
    for (i, value) in c.chart.iter().enumerate() {
        if parse_hex(value).is_none() {
            report(
                find_line(text, "chart"),
                format!("colors.chart[{i}] must be a #rrggbb colour, not `{value}`"),
            );
        }
    }
    // Pairs the UI draws: text must reach 4.5:1, the focus ring (accent)
    // 3:1 as a non-text element (WCAG 2.1 AA, 1.4.3 and 1.4.11).
    for (fg, bg, needed) in [
        ("text", "background", 4.5),
        ("text", "surface", 4.5),
        ("muted", "surface", 4.5),
        ("muted", "background", 4.5),
        ("on_primary", "primary", 4.5),
        ("primary", "surface", 4.5),
        ("primary", "background", 4.5),
        ("danger", "surface", 4.5),
        ("accent", "background", 3.0),
        ("accent", "surface", 3.0),
    ] {
        if let (Some(f), Some(b)) = (rgb.get(fg), rgb.get(bg)) {
            let ratio = contrast(*f, *b);
            if ratio < needed {
                report(
                    find_line(text, &format!("{fg} ")).or_else(|| find_line(text, fg)),
                    format!(
                        "colors.{fg} on colors.{bg} has contrast {ratio:.2}:1; WCAG 2.1 AA needs {needed}:1"
                    ),
                );
            }
        }
    }
    if !["side", "top"].contains(&m.layout.nav.as_str()) {
        report(
            find_line(text, "nav"),
            "layout.nav must be `side` or `top`".to_owned(),
        );
    }
    if !["comfortable", "compact"].contains(&m.layout.density.as_str()) {
        report(
            find_line(text, "density"),
            "layout.density must be `comfortable` or `compact`".to_owned(),
        );
    }
    let plain = |s: &str| !s.contains(['<', '>', '{', '}', ';']);
    if !plain(&m.fonts.body) || !plain(&m.fonts.heading) {
        report(
            find_line(text, "[fonts]"),
            "fonts must be plain CSS font stacks".to_owned(),
        );
    }
}

fn parse_hex(s: &str) -> Option<[u8; 3]> {
    let h = s.strip_prefix('#')?;
    if h.len() != 6 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// WCAG 2.1 contrast ratio of two sRGB colours.
pub fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let lum = |c: [u8; 3]| {
        let ch = |v: u8| {
            let s = f64::from(v) / 255.0;
            if s <= 0.040_45 {
                s / 12.92
            } else {
                ((s + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * ch(c[0]) + 0.7152 * ch(c[1]) + 0.0722 * ch(c[2])
    };
    let (la, lb) = (lum(a), lum(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// The design tokens as CSS custom properties.
fn tokens_css(m: &Manifest) -> String {
    let c = &m.colors;
    let mut s = String::from(":root {\n");
    for (name, value) in [
        ("primary", &c.primary),
        ("on-primary", &c.on_primary),
        ("accent", &c.accent),
        ("background", &c.background),
        ("surface", &c.surface),
        ("text", &c.text),
        ("muted", &c.muted),
        ("border", &c.border),
        ("danger", &c.danger),
        ("success", &c.success),
    ] {
        s.push_str(&format!("  --{name}: {value};\n"));
    }
    let fallback = [
        &c.primary, &c.accent, &c.muted, &c.success, &c.danger, &c.text,
    ];
    for (i, default) in fallback.into_iter().enumerate() {
        let colour = c.chart.get(i).unwrap_or(default);
        s.push_str(&format!("  --chart-{i}: {colour};\n"));
    }
    s.push_str(&format!("  --font-body: {};\n", m.fonts.body));
    s.push_str(&format!("  --font-heading: {};\n", m.fonts.heading));
    s.push_str(&format!("  --radius: {}px;\n", m.layout.radius));
    let pad = if m.layout.density == "compact" {
        "0.3rem"
    } else {
        "0.6rem"
    };
    s.push_str(&format!("  --cell-pad: {pad};\n}}\n"));
    s
}

/// Every loaded theme, and the problems of those left out.
#[derive(Debug)]
pub struct Themes {
    themes: BTreeMap<String, Arc<Theme>>,
    problems: Vec<Problem>,
}

impl Themes {
    /// Loads the shipped themes and those in `dir` (a theme there replaces a
    /// shipped one of the same name). Fails only when the default theme
    /// itself is broken, which a shipped binary's tests rule out.
    pub fn load(dir: Option<&Path>) -> Result<Themes> {
        let mut sets: BTreeMap<String, Files> = BTreeMap::new();
        for (path, bytes) in shipped::SHIPPED {
            if let Some((theme, rest)) = path.split_once('/') {
                sets.entry(theme.to_owned())
                    .or_default()
                    .insert(rest.to_owned(), bytes.to_vec());
            }
        }
        let mut problems = Vec::new();
        if let Some(dir) = dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    for e in entries.flatten() {
                        let path = e.path();
                        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                            continue;
                        }
                        let key = e.file_name().to_string_lossy().into_owned();
                        if key == DEFAULT {
                            // The default is the fallback; it only comes
                            // from the binary, so it cannot be broken.
                            continue;
                        }
                        match read_dir_files(&path) {
                            Ok(files) => {
                                sets.insert(key, files);
                            }
                            Err(p) => problems.push(Problem {
                                theme: key,
                                file: String::new(),
                                line: None,
                                message: p,
                            }),
                        }
                    }
                }
                Err(e) => problems.push(Problem {
                    theme: dir.display().to_string(),
                    file: String::new(),
                    line: None,
                    message: format!("cannot read the themes directory: {e}"),
                }),
            }
        }
        let base = sets.get(DEFAULT).cloned().unwrap_or_default();
        let mut themes = BTreeMap::new();
        for (key, files) in &sets {
            if !valid_key(key) {
                problems.push(Problem {
                    theme: key.clone(),
                    file: String::new(),
                    line: None,
                    message: "a theme's folder name is lower-case letters, digits and `-`"
                        .to_owned(),
                });
                continue;
            }
            match Theme::build(key, files, &base) {
                Ok(t) => {
                    themes.insert(key.clone(), Arc::new(t));
                }
                Err(p) if key == DEFAULT => {
                    let list: Vec<String> = p.iter().map(ToString::to_string).collect();
                    return Err(Error::Internal(format!(
                        "the default theme is broken: {}",
                        list.join("; ")
                    )));
                }
                Err(p) => problems.extend(p),
            }
        }
        for p in &problems {
            tracing::error!(target: "trellis::themes", problem = %p, "theme left out; its tenants get the default theme");
        }
        Ok(Themes { themes, problems })
    }

    /// The theme named `key`, or the default when there is none such.
    pub fn get(&self, key: Option<&str>) -> Arc<Theme> {
        key.and_then(|k| self.themes.get(k))
            .or_else(|| self.themes.get(DEFAULT))
            .cloned()
            .unwrap_or_else(|| {
                // `load` refuses to return without a default.
                Arc::new(Theme {
                    key: DEFAULT.to_owned(),
                    manifest: unreachable_manifest(),
                    env: environment(),
                    assets: HashMap::new(),
                    version: String::new(),
                })
            })
    }

    pub fn default_theme(&self) -> Arc<Theme> {
        self.get(None)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.themes.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.themes.keys()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Theme>> {
        self.themes.values()
    }

    /// Themes left out, and why.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

/// A manifest for the impossible case of a missing default theme.
fn unreachable_manifest() -> Manifest {
    Manifest {
        name: DEFAULT.to_owned(),
        product_name: "Trellis".to_owned(),
        logo: None,
        favicon: None,
        css: None,
        colors: Colors {
            primary: "#1f4fd1".to_owned(),
            on_primary: "#ffffff".to_owned(),
            accent: "#1f4fd1".to_owned(),
            background: "#ffffff".to_owned(),
            surface: "#ffffff".to_owned(),
            text: "#111111".to_owned(),
            muted: "#555555".to_owned(),
            border: "#cccccc".to_owned(),
            danger: "#b00020".to_owned(),
            success: "#1b6e20".to_owned(),
            chart: Vec::new(),
        },
        fonts: Fonts::default(),
        support: Support::default(),
        footer: None,
        layout: Layout::default(),
        resellers: Vec::new(),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 40
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The files of a theme folder, by path inside it (`templates/x.html`):
/// regular files only (a symlink could serve `/etc/passwd` as a logo, a
/// FIFO hang the start), at most two levels deep, 2 MiB each, 20 MiB in all.
fn read_dir_files(dir: &Path) -> std::result::Result<Files, String> {
    const MAX_FILE: u64 = 2 * 1024 * 1024;
    const MAX_TOTAL: u64 = 20 * 1024 * 1024;
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut Files,
        depth: u8,
        total: &mut u64,
    ) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                if depth < 2 {
                    walk(root, &path, out, depth + 1, total)?;
                }
                continue;
            }
            if !meta.is_file() || meta.len() > MAX_FILE || *total + meta.len() > MAX_TOTAL {
                continue;
            }
            if let Ok(rel) = path.strip_prefix(root) {
                *total += meta.len();
                out.insert(
                    rel.to_string_lossy().replace('\\', "/"),
                    std::fs::read(&path)?,
                );
            }
        }
        Ok(())
    }
    let mut files = Files::new();
    let mut total = 0;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    walk(dir, dir, &mut files, 0, &mut total)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    Ok(files)
}

/// Checks the theme folder at `path` the way the kernel would load it.
/// Returns the theme's name or every problem found.
pub fn check(path: &Path) -> std::result::Result<String, Vec<Problem>> {
    let key = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = read_dir_files(path).map_err(|message| {
        vec![Problem {
            theme: key.clone(),
            file: String::new(),
            line: None,
            message,
        }]
    })?;
    let base: Files = shipped::SHIPPED
        .iter()
        .filter_map(|(p, b)| {
            p.strip_prefix("default/")
                .map(|rest| (rest.to_owned(), b.to_vec()))
        })
        .collect();
    if !valid_key(&key) {
        return Err(vec![Problem {
            theme: key,
            file: String::new(),
            line: None,
            message: "a theme's folder name is lower-case letters, digits and `-`".to_owned(),
        }]);
    }
    Theme::build(&key, &files, &base).map(|t| t.manifest.name)
}

/// Writes a new theme folder at `dir/name`: a manifest copied from the
/// default theme's, ready to edit, and an empty stylesheet.
pub fn scaffold(dir: &Path, name: &str) -> std::result::Result<std::path::PathBuf, String> {
    if !valid_key(name) {
        return Err("a theme's name is lower-case letters, digits and `-` (at most 40)".to_owned());
    }
    let target = dir.join(name);
    if target.exists() {
        return Err(format!("{} already exists", target.display()));
    }
    let manifest = shipped::SHIPPED
        .iter()
        .find(|(p, _)| *p == "default/theme.toml")
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .ok_or("the default theme has no theme.toml")?;
    let shipped_file = |name: &str| {
        shipped::SHIPPED
            .iter()
            .find(|(p, _)| p.strip_prefix("default/") == Some(name))
            .map(|(_, b)| b.to_vec())
            .unwrap_or_default()
    };
    let manifest = manifest
        .lines()
        .map(|l| {
            if l.starts_with("name = ") {
                format!("name = {name:?}")
            } else if l.starts_with("css = ") {
                "css = \"theme.css\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let write = |path: std::path::PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(target.join("templates"))
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    write(
        target.join("theme.toml"),
        format!("{manifest}\n").as_bytes(),
    )?;
    write(target.join("logo.svg"), &shipped_file("logo.svg"))?;
    write(target.join("favicon.svg"), &shipped_file("favicon.svg"))?;
    write(
        target.join("theme.css"),
        b"/* Styles after the default theme's base styles. Tokens (colours,\n   fonts, radius) come from theme.toml as CSS variables. */\n",
    )?;
    write(
        target.join("README.md"),
        b"Copy a template from themes/default/templates here to override it;\nthe others come from the default theme.\n",
    )?;
    Ok(target)
}
