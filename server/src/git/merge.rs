//! Three-way merges: of texts (an agent's result onto the user's newer buffer), of branches
//! (reviewed tasks into a plan's integration branch), and trial merges that predict a conflict
//! between two branches before either is finished. Conflicts are reported with both sides and
//! never resolved silently.

use git2::{
    BranchType, FileFavor, MergeFileInput, MergeFileOptions, MergeOptions, Oid, Repository,
};
use serde::Serialize;

use super::{Context, GitError, Result, signature};

/// Conflict markers longer than any a source file is likely to contain, so that they cannot be
/// confused with the text.
const MARKER_SIZE: u16 = 19;

/// One conflicting region of a text merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictRegion {
    /// Zero-based first line of the region in "ours" (the user's text), and how many lines.
    pub ours_start_line: usize,
    pub ours_line_count: usize,
    pub ours: String,
    pub theirs: String,
}

/// The result of merging texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMerge {
    Clean(String),
    Conflicts(Vec<ConflictRegion>),
}

/// Merges `ours` and `theirs`, both descended from `base`.
pub fn merge_text(base: &str, ours: &str, theirs: &str) -> Result<TextMerge> {
    if ours == base || ours == theirs {
        return Ok(TextMerge::Clean(theirs.to_owned()));
    }
    if theirs == base {
        return Ok(TextMerge::Clean(ours.to_owned()));
    }
    // git2 does not initialise libgit2 on the merge_file path, and without that the first call
    // in a process fails with "no error"; creating an Oid initialises it.
    let _ = Oid::from_str("0");
    let mut base_input = MergeFileInput::new();
    base_input.content(base.as_bytes());
    let mut ours_input = MergeFileInput::new();
    ours_input.content(ours.as_bytes());
    let mut theirs_input = MergeFileInput::new();
    theirs_input.content(theirs.as_bytes());
    let mut options = MergeFileOptions::new();
    options
        .favor(FileFavor::Normal)
        .style_standard(true)
        .marker_size(MARKER_SIZE)
        .our_label("ours")
        .their_label("theirs");
    let result = git2::merge_file(&base_input, &ours_input, &theirs_input, Some(&mut options))
        .context(|| "merging texts".into())?;
    let merged = String::from_utf8_lossy(result.content()).into_owned();
    if result.is_automergeable() {
        return Ok(TextMerge::Clean(merged));
    }
    Ok(TextMerge::Conflicts(conflict_regions(&merged, ours)))
}

/// Reads the conflict blocks of a merged text, and places each "ours" side in `ours`.
fn conflict_regions(merged: &str, ours: &str) -> Vec<ConflictRegion> {
    let start = "<".repeat(MARKER_SIZE as usize);
    let middle = "=".repeat(MARKER_SIZE as usize);
    let end = ">".repeat(MARKER_SIZE as usize);
    let ours_lines: Vec<&str> = ours.split_inclusive('\n').collect();
    let mut regions = Vec::new();
    let mut search_from = 0;
    let mut lines = merged.split_inclusive('\n');
    while let Some(line) = lines.next() {
        if !line.starts_with(&start) {
            continue;
        }
        let mut our_side = String::new();
        let mut their_side = String::new();
        let mut in_theirs = false;
        for line in lines.by_ref() {
            if line.starts_with(&middle) {
                in_theirs = true;
            } else if line.starts_with(&end) {
                break;
            } else if in_theirs {
                their_side.push_str(line);
            } else {
                our_side.push_str(line);
            }
        }
        let count = our_side.split_inclusive('\n').count();
        let found = (search_from..=ours_lines.len().saturating_sub(count)).find(|&i| {
            ours_lines
                .get(i..i + count)
                .is_some_and(|window| window.concat() == our_side)
        });
        let at = found.unwrap_or(search_from.min(ours_lines.len()));
        search_from = at + count;
        regions.push(ConflictRegion {
            ours_start_line: at,
            ours_line_count: count,
            ours: our_side,
            theirs: their_side,
        });
    }
    regions
}

/// A file that two sides changed incompatibly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileConflict {
    pub path: String,
    /// Each side's text; `None` when the side deleted the file (or it is binary).
    pub ancestor: Option<String>,
    pub ours: Option<String>,
    pub theirs: Option<String>,
    /// The conflicting regions, when both sides are text.
    pub regions: Vec<ConflictRegion>,
}

/// What merging a branch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The target already contained the source.
    UpToDate(Oid),
    /// The target moved forward to the source.
    FastForward(Oid),
    /// A merge commit was made.
    Merged(Oid),
    /// Nothing changed: these files conflict.
    Conflicts(Vec<FileConflict>),
}

/// Merges commit `source` into branch `target` (created at `source` if it does not exist yet),
/// in memory, committing only a clean result.
pub fn merge_into(
    repo: &Repository,
    target: &str,
    source: Oid,
    message: &str,
) -> Result<MergeOutcome> {
    let theirs = repo
        .find_commit(source)
        .context(|| format!("finding commit {source}"))?;
    let branch = match repo.find_branch(target, BranchType::Local) {
        Ok(branch) => branch,
        Err(_) => {
            repo.branch(target, &theirs, false)
                .context(|| format!("creating branch {target}"))?;
            return Ok(MergeOutcome::FastForward(source));
        }
    };
    let reference_name = branch
        .get()
        .name()
        .map(str::to_owned)
        .map_err(|_| GitError::Refused(format!("branch {target} has no UTF-8 name")))?;
    let ours = branch
        .get()
        .peel_to_commit()
        .context(|| format!("reading branch {target}"))?;
    if ours.id() == source
        || repo
            .graph_descendant_of(ours.id(), source)
            .context(|| "comparing history".into())?
    {
        return Ok(MergeOutcome::UpToDate(ours.id()));
    }
    if repo
        .graph_descendant_of(source, ours.id())
        .context(|| "comparing history".into())?
    {
        repo.reference_matching(&reference_name, source, true, ours.id(), message)
            .context(|| format!("moving {target} forward"))?;
        return Ok(MergeOutcome::FastForward(source));
    }
    let mut index = repo
        .merge_commits(&ours, &theirs, Some(&merge_options()))
        .context(|| format!("merging {source} into {target}"))?;
    if index.has_conflicts() {
        return Ok(MergeOutcome::Conflicts(conflicts(repo, &index)?));
    }
    let tree_id = index
        .write_tree_to(repo)
        .context(|| "writing the merged tree".into())?;
    let tree = repo
        .find_tree(tree_id)
        .context(|| "reading the merged tree".into())?;
    let signature = signature("integrator")?;
    let commit = repo
        .commit(
            None,
            &signature,
            &signature,
            message,
            &tree,
            &[&ours, &theirs],
        )
        .context(|| "writing the merge commit".into())?;
    // Only if nobody moved the branch meanwhile.
    repo.reference_matching(&reference_name, commit, true, ours.id(), message)
        .context(|| format!("updating {target}"))?;
    Ok(MergeOutcome::Merged(commit))
}

/// Predicts the conflicts of merging `a` and `b`, writing nothing.
pub fn trial_merge(repo: &Repository, a: Oid, b: Oid) -> Result<Vec<FileConflict>> {
    let ours = repo
        .find_commit(a)
        .context(|| format!("finding commit {a}"))?;
    let theirs = repo
        .find_commit(b)
        .context(|| format!("finding commit {b}"))?;
    let index = repo
        .merge_commits(&ours, &theirs, Some(&merge_options()))
        .context(|| format!("trial merge of {a} and {b}"))?;
    if index.has_conflicts() {
        conflicts(repo, &index)
    } else {
        Ok(Vec::new())
    }
}

fn merge_options() -> MergeOptions {
    let mut options = MergeOptions::new();
    options.find_renames(true);
    options
}

fn conflicts(repo: &Repository, index: &git2::Index) -> Result<Vec<FileConflict>> {
    let text = |entry: &Option<git2::IndexEntry>| -> Option<String> {
        let entry = entry.as_ref()?;
        let blob = repo.find_blob(entry.id).ok()?;
        String::from_utf8(blob.content().to_vec()).ok()
    };
    let mut found = Vec::new();
    for conflict in index
        .conflicts()
        .context(|| "reading the conflicts".into())?
    {
        let conflict = conflict.context(|| "reading a conflict".into())?;
        let path = [&conflict.our, &conflict.their, &conflict.ancestor]
            .into_iter()
            .flatten()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .next()
            .unwrap_or_default();
        let (ancestor, ours, theirs) = (
            text(&conflict.ancestor),
            text(&conflict.our),
            text(&conflict.their),
        );
        let regions = match (&ours, &theirs) {
            (Some(o), Some(t)) => match merge_text(ancestor.as_deref().unwrap_or(""), o, t)? {
                TextMerge::Conflicts(regions) => regions,
                TextMerge::Clean(_) => Vec::new(),
            },
            _ => Vec::new(),
        };
        found.push(FileConflict {
            path,
            ancestor,
            ours,
            theirs,
            regions,
        });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn clean(base: &str, ours: &str, theirs: &str) -> String {
        match merge_text(base, ours, theirs).unwrap() {
            TextMerge::Clean(text) => text,
            TextMerge::Conflicts(c) => panic!("unexpected conflicts {c:?}"),
        }
    }

    #[test]
    fn disjoint_edits_merge() {
        let base = "a\nb\nc\nd\ne\nf\n";
        let ours = "A\nb\nc\nd\ne\nf\n";
        let theirs = "a\nb\nc\nd\ne\nF\n";
        assert_eq!(clean(base, ours, theirs), "A\nb\nc\nd\ne\nF\n");
        assert_eq!(clean(base, base, theirs), theirs);
        assert_eq!(clean(base, ours, base), ours);
        assert_eq!(clean(base, theirs, theirs), theirs);
    }

    #[test]
    fn overlapping_edits_are_conflicts_with_regions_in_ours() {
        let base = "one\ntwo\nthree\nfour\n";
        let ours = "zero\none\nTWO (user)\nthree\nfour\n";
        let theirs = "one\nTWO (agent)\nthree\nfour\n";
        let TextMerge::Conflicts(regions) = merge_text(base, ours, theirs).unwrap() else {
            panic!("expected a conflict");
        };
        assert_eq!(
            regions,
            vec![ConflictRegion {
                ours_start_line: 2,
                ours_line_count: 1,
                ours: "TWO (user)\n".into(),
                theirs: "TWO (agent)\n".into(),
            }]
        );
    }
}
