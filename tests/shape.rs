//! The codebase's shape, checked: no module imports a module that imports it back (the crate
//! root included), the gateway's files stay small enough to read, and the platform crates
//! know nothing of the shop.
//!
//! Imports are read from the source text: every `crate::` and `super::` path (grouped `use`
//! lists included), every `self::` path, and every path through a child module declared with
//! `mod`. A path is an edge to the deepest module it names; a path to an item the crate root
//! defines or re-exports is an edge to the root. Test modules (`#[cfg(test)] mod ...`) are
//! left out: they may reach back into what they test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates whose module graph must have no cycle. A crate joins this list once it is clean.
const ACYCLIC: &[&str] = &[
    "crates/store",
    "crates/saga",
    "crates/kernel",
    "crates/web",
    "crates/audit",
    "crates/runtime",
    "crates/telemetry",
    "crates/bus",
    "services/gateway",
    "services/contracts",
    "cli",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

/// Module path (`a::b`, `` for the root) → file, for every `.rs` file under `src`.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: Vec<String> =
                relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
                parts.clear();
            } else if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            found.insert(parts.join("::"), path);
        }
    }
    found
}

/// The source without comments, string literals and test modules.
fn code_of(text: &str) -> String {
    let cut = text
        .match_indices("#[cfg(test)]")
        .find(|(at, _)| text[at + 12..].trim_start().starts_with("mod "))
        .map_or(text.len(), |(at, _)| at);
    let text = &text[..cut];
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal (not a lifetime): skip it so that '{' or '"' do not count.
            b'\'' if bytes.get(i + 2) == Some(&b'\'') || bytes.get(i + 1) == Some(&b'\\') => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("' '");
            }
            byte => {
                out.push(char::from(byte));
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths after `prefix::` in `code`, each as its segments; a grouped list
/// (`prefix::{a, b::c}`) gives one path per member.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let needle = format!("{prefix}::");
    for (at, _) in code.match_indices(&needle) {
        if code[..at].chars().next_back().is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        let rest = &code[at + needle.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut member = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    paths.push(segments(&member));
                    member.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    member.push(c);
                }
            }
        } else {
            paths.push(segments(rest));
        }
    }
    paths.retain(|p| !p.is_empty());
    paths
}

/// The leading `a::b::c` of `text`.
fn segments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    loop {
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    out
}

/// Module → the modules it imports.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let deepest = |full: &[String]| -> String {
        (1..=full.len())
            .rev()
            .map(|n| full[..n].join("::"))
            .find(|candidate| modules.contains_key(candidate))
            .unwrap_or_default()
    };
    let mut graph = BTreeMap::new();
    for (name, file) in &modules {
        let code = code_of(&std::fs::read_to_string(file).expect("a source file"));
        let own: Vec<String> =
            if name.is_empty() { Vec::new() } else { name.split("::").map(str::to_owned).collect() };
        let parent = &own[..own.len().saturating_sub(1)];
        let mut edges = BTreeSet::new();
        for path in paths_after(&code, "crate") {
            edges.insert(deepest(&path));
        }
        if !own.is_empty() {
            for path in paths_after(&code, "super") {
                edges.insert(deepest(&[parent, &path[..]].concat()));
            }
        }
        for path in paths_after(&code, "self") {
            edges.insert(deepest(&[&own[..], &path[..]].concat()));
        }
        // Children declared here and used by their bare name.
        for line in code.lines() {
            let line = line.trim_start();
            let declared = line
                .strip_prefix("pub(crate) mod ")
                .or_else(|| line.strip_prefix("pub(super) mod "))
                .or_else(|| line.strip_prefix("pub mod "))
                .or_else(|| line.strip_prefix("mod "));
            let Some(child) = declared.and_then(|d| d.strip_suffix(';')) else { continue };
            let used = paths_after(&code, child).into_iter().next().is_some();
            if used {
                edges.insert([&own[..], &[child.to_owned()]].concat().join("::"));
            }
        }
        edges.remove(name);
        graph.insert(name.clone(), edges);
    }
    graph
}

/// Every cycle's modules, one list per strongly connected component larger than one module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut next = vec![from.to_owned()];
        while let Some(module) = next.pop() {
            for target in graph.get(&module).into_iter().flatten() {
                if seen.insert(target.clone()) {
                    next.push(target.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reaches(m))).collect();
    let mut components: Vec<Vec<String>> = Vec::new();
    let mut placed = BTreeSet::new();
    for module in graph.keys() {
        if placed.contains(module) || !reach[module].contains(module) {
            continue;
        }
        let component: Vec<String> = graph
            .keys()
            .filter(|other| reach[module].contains(*other) && reach[*other].contains(module))
            .cloned()
            .collect();
        placed.extend(component.iter().cloned());
        components
            .push(component.into_iter().map(|m| if m.is_empty() { "crate".to_owned() } else { m }).collect());
    }
    components
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut found = Vec::new();
    for krate in ACYCLIC {
        for cycle in cycles(&import_graph(&workspace().join(krate).join("src"))) {
            found.push(format!("{krate}: {}", cycle.join(" ⇄ ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle_when_there_is_one() {
    let root = tempfile::tempdir().expect("a temporary folder");
    let src = root.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use a::Thing;\n").expect("write");
    std::fs::write(src.join("a.rs"), "use crate::b::{helper, Other};\npub struct Thing;\n").expect("write");
    std::fs::write(src.join("b.rs"), "pub fn helper() {}\npub struct Other(crate::Thing);\n").expect("write");
    let graph = import_graph(src);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(graph["b"], BTreeSet::from([String::new()]), "crate::Thing is the root's");
    assert_eq!(cycles(&graph), vec![vec!["crate".to_owned(), "a".to_owned(), "b".to_owned()]]);
    // A child imported by its parent and the parent's item re-exported by the child.
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").expect("write");
    std::fs::write(src.join("b.rs"), "pub fn helper() {}\npub struct Other;\n").expect("write");
    assert!(cycles(&import_graph(src)).is_empty());
    std::fs::create_dir(src.join("b")).expect("mkdir");
    std::fs::write(src.join("b.rs"), "mod inner;\npub fn helper() { inner::f() }\npub struct Other;\n")
        .expect("write");
    std::fs::write(
        src.join("b/inner.rs"),
        "// super::helper in a comment\npub fn f() { let _ = \"super::Other\"; }\n",
    )
    .expect("write");
    assert!(cycles(&import_graph(src)).is_empty(), "comments and strings are not imports");
    std::fs::write(src.join("b/inner.rs"), "pub fn f() { super::helper() }\n").expect("write");
    assert_eq!(cycles(&import_graph(src)), vec![vec!["b".to_owned(), "b::inner".to_owned()]]);
}

/// Lines of a file before its test module.
fn lines_before_tests(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).expect("a source file");
    text.lines().take_while(|line| !line.starts_with("#[cfg(test)]")).count()
}

#[test]
fn no_gateway_source_file_exceeds_400_lines() {
    let src = workspace().join("services/gateway/src");
    let too_long: Vec<String> = modules(&src)
        .values()
        .map(|path| (path, lines_before_tests(path)))
        .filter(|(_, lines)| *lines > 400)
        .map(|(path, lines)| format!("{}: {lines} lines", path.display()))
        .collect();
    assert!(too_long.is_empty(), "split by responsibility: {too_long:?}");
}

#[test]
fn the_platform_crates_know_nothing_of_the_shop() {
    let shop = [
        "tessera-contracts",
        "tessera-inventory",
        "tessera-orders",
        "tessera-payments",
        "tessera-customers",
        "tessera-support",
        "tessera-gateway",
    ];
    let crates = workspace().join("crates");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&crates).expect("crates/") {
        let manifest = entry.expect("an entry").path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("a manifest");
        let parsed: toml::Table = text.parse().expect("a manifest parses");
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(dependencies) = parsed.get(section).and_then(toml::Value::as_table) else { continue };
            for name in dependencies.keys().filter(|name| shop.contains(&name.as_str())) {
                found.push(format!("{} [{section}] {name}", manifest.display()));
            }
        }
    }
    assert!(found.is_empty(), "platform crates depending on the shop: {found:?}");
}

/// The relative links of the README and of `docs/`, each resolved from its file.
fn relative_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("a document");
    let mut links = Vec::new();
    for (at, _) in text.match_indices("](") {
        let rest = &text[at + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = rest[..end].split('#').next().unwrap_or_default().trim();
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        links.push(target.to_owned());
    }
    links
}

#[test]
fn the_documents_link_only_to_files_inside_the_repository() {
    let root = workspace().canonicalize().expect("the workspace");
    let mut documents = vec![root.join("README.md")];
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("docs/") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                documents.push(path);
            }
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in &documents {
        for link in relative_links(document) {
            checked += 1;
            let target = document.parent().expect("a folder").join(&link);
            match target.canonicalize() {
                Ok(found) if found.starts_with(&root) => {}
                Ok(found) => broken.push(format!(
                    "{}: {link} leaves the repository ({})",
                    document.display(),
                    found.display()
                )),
                Err(_) => broken.push(format!("{}: {link} does not exist", document.display())),
            }
        }
    }
    assert!(checked >= 5, "only {checked} links found: the link reader is broken");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
