//! Output capture: the cap, the marker, the cuts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn output_within_the_cap_is_kept_whole() {
    let mut c = Capture::new(8);
    c.push(b"abc");
    c.push(b"defgh");
    assert_eq!(c.into_text(Encoding::Utf8), "abcdefgh");
    let mut c = Capture::new(4);
    c.push(b"abcde");
    assert_eq!(
        c.into_text(Encoding::Utf8),
        "ab\n... 1 bytes omitted ...\nde"
    );
    let c = Capture::new(0);
    assert_eq!(c.into_text(Encoding::Utf8), "");
}

#[test]
fn a_long_stream_keeps_whole_lines_at_both_ends_and_counts_the_rest() {
    let mut c = Capture::new(1000);
    let mut total = 0;
    let text: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
    // Chunks of varied sizes, as pipes deliver them.
    let mut rest = text.as_bytes();
    let mut size = 1;
    while !rest.is_empty() {
        let (chunk, more) = rest.split_at(size.min(rest.len()));
        c.push(chunk);
        total += chunk.len();
        rest = more;
        size = size * 7 % 613 + 1;
        assert!(c.held() <= 1000, "{} bytes held", c.held());
    }
    let out = c.into_text(Encoding::Utf8);
    let (n, shown) = omitted(&out);
    assert_eq!(n + shown.len() as u64, total as u64, "{out}");
    let (head, tail) = out.split_once("bytes omitted ...\n").unwrap();
    assert!(head.starts_with("line 0\nline 1\n"), "{out}");
    assert!(tail.ends_with("line 9999\n"), "{out}");
    // Whole lines on both sides of the marker.
    let head_lines: Vec<&str> = head.lines().collect();
    assert!(head_lines[head_lines.len() - 2].starts_with("line "));
    assert!(tail.lines().all(|l| l.starts_with("line ")), "{out}");
    let first = tail.lines().next().unwrap();
    assert!(text.contains(&format!("\n{first}\n")), "{first}");
}

#[test]
fn the_cut_never_splits_a_character() {
    for ch in ['é', '€', '😀'] {
        for cap in 7..=20 {
            let mut c = Capture::new(cap);
            let text: String = std::iter::repeat_n(ch, 200).collect();
            for chunk in text.as_bytes().chunks(5) {
                c.push(chunk);
            }
            let out = c.into_text(Encoding::Utf8);
            assert!(!out.contains('\u{fffd}'), "{ch} cap {cap}: {out:?}");
            let (n, shown) = omitted(&out);
            // Line breaks around the marker are ours, not the stream's.
            let shown = shown.replace('\n', "").len() as u64;
            assert_eq!(n + shown, text.len() as u64, "{ch} cap {cap}: {out:?}");
        }
    }
    // One byte, one character: cut anywhere.
    let mut c = Capture::new(5);
    c.push(&[0xe9; 11]);
    assert_eq!(
        c.into_text(Encoding::Latin1),
        "éé\n... 6 bytes omitted ...\nééé"
    );
}

#[tokio::test]
async fn two_megabytes_of_output_become_head_marker_and_tail_under_the_cap() {
    let r = ran(&[("command", Value::from("seq 1 300000"))]).await;
    assert!(r.succeeded, "{r}");
    let limit = RunLimits::default().output_limit;
    assert!(r.output.len() < limit, "{} bytes", r.output.len());
    assert!(r.output.starts_with("1\n2\n3\n"), "{}", &r.output[..20]);
    assert!(r.output.ends_with("\n299999\n300000\n"));
    let total: u64 = (1..=300_000u64)
        .map(|i| i.to_string().len() as u64 + 1)
        .sum();
    let (n, shown) = omitted(&r.output);
    assert_eq!(n + shown.len() as u64, total);
}

/// The process's peak resident size in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_gibibyte_stream_completes_with_a_bounded_result() {
    let before = peak_kib();
    let r = ran(&[(
        "command",
        Value::from("head -c 1073741824 /dev/zero | tr '\\0' x"),
    )])
    .await;
    let grew = peak_kib().saturating_sub(before);
    eprintln!("1 GiB of output: peak RSS grew by {grew} KiB");
    assert!(r.succeeded, "{}", &r.output[..100]);
    // stdout's half of the cap (stderr is captured too): 64 KiB head, 64 KiB tail.
    let marker = "\n... 1073610752 bytes omitted ...\n";
    assert_eq!(r.output.len(), 128 * 1024 + marker.len() + 1);
    assert!(r.output.contains("x\n... 1073610752 bytes omitted ...\nx"));
    // Holding the stream would take a gibibyte.
    assert!(grew < 256 * 1024, "peak RSS grew by {grew} KiB");
}

#[tokio::test]
async fn stderr_has_its_own_half_and_one_stream_alone_has_the_whole_cap() {
    let r = ran(&[("command", Value::from("seq 1 100000 >&2; echo out"))]).await;
    assert!(
        r.output.starts_with("out\nStderr:\n1\n2\n"),
        "{}",
        &r.output[..40]
    );
    assert!(r.output.ends_with("\n100000\n") && r.output.contains(" bytes omitted ...\n"));
    let r = ran(&[
        ("command", Value::from("seq 1 100000")),
        ("capture_stderr", Value::from(false)),
    ])
    .await;
    let (_, shown) = omitted(&r.output);
    let limit = RunLimits::default().output_limit;
    assert!(
        shown.len() > limit / 2 && shown.len() <= limit,
        "{}",
        shown.len()
    );
}
