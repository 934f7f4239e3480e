//! The architecture's rules, checked on the source (`docs/architecture.md`): the warehouse in
//! `dataflows/` uses only the model and the operators; only the runtime and the sinks' exit
//! reach into the warehouse; only the checks (and the benchmark that measures it as a
//! baseline) use the batch twin; and no two files depend on each other, directly or through
//! others.
//!
//! A file depends on another when it names a path in it (`crate::…`, `super::…`, `self::…`) in
//! its code — doc comments and the unit tests at the end of a file left out. A path is taken
//! to the longest prefix that is a module file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module file of the library, by its module path (`crate::sinks::net`).
fn module_files() -> BTreeMap<Vec<String>, PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut modules = BTreeMap::new();
    let mut add_dir = |dir: &Path, prefix: Vec<String>| {
        let mut stack = vec![(dir.to_path_buf(), prefix)];
        while let Some((dir, prefix)) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_stem().unwrap().to_string_lossy().to_string();
                if path.is_dir() {
                    let mut inner = prefix.clone();
                    inner.push(name);
                    stack.push((path, inner));
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let mut module = prefix.clone();
                    if name == "main" {
                        continue;
                    }
                    if name != "mod" && name != "lib" {
                        module.push(name);
                    }
                    modules.insert(module, path);
                }
            }
        }
    };
    add_dir(&root.join("src"), vec!["crate".to_string()]);
    add_dir(
        &root.join("dataflows"),
        vec!["crate".to_string(), "dataflows".to_string()],
    );
    modules
}

/// The code of a file: without comments, and without the unit tests that end it.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(tests) => &text[..tests],
        None => &text[..],
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The child modules a file declares (`mod a;`, `pub mod b;`).
fn child_modules(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .collect()
}

/// The paths a file's code names: `crate::a::b`, `super::c`, `self::d`, and paths into the
/// file's own child modules (`e::f`), with the items of a `use` group
/// (`use crate::a::{b, c::d}`) each made whole.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut heads: Vec<String> = ["crate::", "super::", "self::"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    heads.extend(
        child_modules(code)
            .into_iter()
            .map(|name| format!("{name}::")),
    );
    let mut i = 0;
    while i < bytes.len() {
        let starts = heads
            .iter()
            .find(|start| bytes[i..].starts_with(start.as_bytes()))
            .filter(|_| i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':');
        let Some(start) = starts else {
            i += 1;
            continue;
        };
        let head = &start[..start.len() - 2];
        let mut j = i + start.len();
        let mut path = vec![head.to_string()];
        let mut segment = String::new();
        loop {
            if segment.is_empty() && bytes.get(j) == Some(&b'{') {
                // A group: every item is the path so far plus the item.
                let end = matching_brace(code, j);
                for item in split_group(&code[j + 1..end]) {
                    let mut whole = path.clone();
                    whole.extend(item.split("::").map(|s| s.trim().to_string()));
                    paths.push(whole);
                }
                j = end + 1;
                path.clear();
                break;
            }
            match bytes.get(j) {
                Some(&c) if is_ident(c) => {
                    segment.push(c as char);
                    j += 1;
                }
                Some(b':') if bytes[j..].starts_with(b"::") => {
                    path.push(std::mem::take(&mut segment));
                    j += 2;
                }
                _ => break,
            }
        }
        if !path.is_empty() {
            if !segment.is_empty() {
                path.push(segment);
            }
            paths.push(path);
        }
        i = j.max(i + 1);
    }
    paths
}

fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (offset, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + offset;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// The items of a `use` group, nested groups flattened (`a, b::{c, d}` → `a`, `b::c`, `b::d`).
fn split_group(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    let mut flat = Vec::new();
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match item.find("::{") {
            Some(brace) => {
                let prefix = &item[..brace];
                for inner in split_group(&item[brace + 3..item.len() - 1]) {
                    flat.push(format!("{prefix}::{inner}"));
                }
            }
            // `a as b` names `a`.
            None => flat.push(item.split(" as ").next().unwrap_or_default().to_string()),
        }
    }
    flat
}

/// The module a path in `module`'s code names: the longest prefix that is a module file.
fn resolve(
    module: &[String],
    path: &[String],
    modules: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    // `super` of a file `a/b.rs` (module a::b) is `a`; of `a/mod.rs` (module a), a's parent:
    // either way the module's path without its last segment.
    let (mut absolute, mut rest): (Vec<String>, &[String]) = match path[0].as_str() {
        "crate" => (vec!["crate".to_string()], &path[1..]),
        "self" | "super" => (module.to_vec(), &path[1..]),
        // A path into one of the file's own child modules.
        _ => (module.to_vec(), path),
    };
    if path[0] == "super" {
        absolute.pop();
        while rest.first().is_some_and(|s| s == "super") {
            absolute.pop();
            rest = &rest[1..];
        }
    }
    absolute.extend(rest.iter().cloned());
    (1..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|prefix| modules.contains_key(prefix))
}

/// Every file's dependencies on other files, by module path.
fn dependencies() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules = module_files();
    let mut graph = BTreeMap::new();
    for (module, path) in &modules {
        let context = module.clone();
        let mut targets = BTreeSet::new();
        for named in named_paths(&code(path)) {
            if let Some(target) = resolve(&context, &named, &modules) {
                if &target != module {
                    targets.insert(target);
                }
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

fn name(module: &[String]) -> String {
    module.join("::")
}

fn within(module: &[String], folder: &[&str]) -> bool {
    module.len() >= folder.len() && module.iter().zip(folder).all(|(a, b)| a == b)
}

#[test]
fn the_warehouse_uses_only_the_model_and_the_operators() {
    let mut wrong = Vec::new();
    for (module, targets) in dependencies() {
        if !within(&module, &["crate", "dataflows"]) {
            continue;
        }
        for target in targets {
            let allowed = within(&target, &["crate", "model"])
                || within(&target, &["crate", "operators"])
                || within(&target, &["crate", "dataflows"]);
            if !allowed {
                wrong.push(format!("{} uses {}", name(&module), name(&target)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dataflows/ reaches past the model and the operators:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_the_runtime_and_the_sinks_exit_reach_into_the_warehouse() {
    let mut wrong = Vec::new();
    for (module, targets) in dependencies() {
        let allowed = within(&module, &["crate", "dataflows"])
            || within(&module, &["crate", "runtime"])
            || module == ["crate", "sinks", "exits"]
            || module == ["crate"];
        for target in targets {
            if within(&target, &["crate", "dataflows"]) && !allowed {
                wrong.push(format!("{} uses {}", name(&module), name(&target)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the warehouse's internals are used outside the runtime and the sinks' exit:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_the_checks_use_the_batch_twin() {
    let mut wrong = Vec::new();
    for (module, targets) in dependencies() {
        // The correction benchmark times the twin's recomputation as the baseline it measures
        // the engine against.
        let allowed =
            within(&module, &["crate", "check"]) || module == ["crate", "bench", "correction"];
        if targets.contains(&vec!["crate".into(), "check".into(), "twin".into()]) && !allowed {
            wrong.push(name(&module));
        }
    }
    assert!(
        wrong.is_empty(),
        "the batch twin is used outside the checks: {wrong:?}"
    );
}

#[test]
fn no_two_files_depend_on_each_other() {
    let graph = dependencies();
    let cycles = strongly_connected(&graph);
    let described: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            cycle
                .iter()
                .map(|m| name(m))
                .collect::<Vec<_>>()
                .join(" ↔ ")
        })
        .collect();
    assert!(
        described.is_empty(),
        "files that depend on each other:\n{}",
        described.join("\n")
    );
}

/// The strongly connected components of more than one file (Tarjan's algorithm).
fn strongly_connected(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
) -> Vec<Vec<Vec<String>>> {
    struct State<'a> {
        graph: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        next: usize,
        components: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a Vec<String>) {
        state.index.insert(node, state.next);
        state.low.insert(node, state.next);
        state.next += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.graph.get(node).into_iter().flatten() {
            let Some((next, _)) = state.graph.get_key_value(next) else {
                continue;
            };
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[next].min(state.low[node]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.index[next].min(state.low[node]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.components.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.components
}

#[test]
fn the_path_reader_sees_groups_and_relative_paths() {
    let paths = named_paths(
        "use crate::a::{b, c::{d, e as f}};\nuse super::g::H;\nlet x = crate::i::j(1);",
    );
    let text: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        text,
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "super::g::H",
            "crate::i::j"
        ]
    );
    let paths = named_paths("mod net;\nuse net::{Net, NetOp};\nfn f() { x::y(); }");
    let text: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(text, ["net::Net", "net::NetOp"]);
}

#[test]
fn a_cycle_through_three_files_is_found_and_a_chain_is_not() {
    let module = |name: &str| vec!["crate".to_string(), name.to_string()];
    let mut graph = BTreeMap::new();
    graph.insert(module("a"), BTreeSet::from([module("b")]));
    graph.insert(module("b"), BTreeSet::from([module("c")]));
    graph.insert(module("c"), BTreeSet::from([module("a"), module("d")]));
    graph.insert(module("d"), BTreeSet::new());
    assert_eq!(
        strongly_connected(&graph),
        vec![vec![module("a"), module("b"), module("c")]]
    );
    graph.insert(module("c"), BTreeSet::from([module("d")]));
    assert!(strongly_connected(&graph).is_empty());
}
