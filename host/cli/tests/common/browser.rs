//! What the browser tests share: where the scripts are, the tools they
//! need (each test fails and says how to install what is missing), and the
//! check of a screenshot.

use std::path::Path;
use std::process::Command;

pub const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "apt-get install chromium chromium-driver && npm ci --prefix tests/browser";
const FONTS: &str = "apt-get install fonts-noto-cjk";
/// Each picture stays small enough to keep in the repository.
const MAX_PICTURE_BYTES: u64 = 300 * 1024;

pub fn browser_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser"))
}

pub fn repo_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Chromium, playwright-core, and with `chinese` a font with Chinese
/// characters (without one Chinese text is drawn as empty boxes).
pub fn require_browser_tools(chinese: bool) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; install the browser test tools with: {INSTALL}"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing; install the browser test tools with: {INSTALL}"
    );
    if chinese {
        let fonts = Command::new("fc-list")
            .args([":lang=zh", "family"])
            .output()
            .unwrap_or_else(|error| panic!("fc-list cannot be run ({error}); install: {FONTS}"));
        assert!(
            fonts.status.success() && !fonts.stdout.trim_ascii().is_empty(),
            "no font with Chinese characters; install one with: {FONTS}"
        );
    }
}

/// A PNG of `width` pixels, of a reasonable height and size, that shows a
/// page: more than a few colours, and text or boxes on a fair share of it.
pub fn check_picture(path: &Path, width: u32) {
    let shown = path.display();
    let bytes = std::fs::metadata(path)
        .unwrap_or_else(|error| {
            panic!("{shown}: {error}; make it with TESSERA_UPDATE_SCREENSHOTS=1")
        })
        .len();
    assert!(
        bytes <= MAX_PICTURE_BYTES,
        "{shown} is {bytes} bytes, more than {MAX_PICTURE_BYTES}"
    );
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file)
        .read_info()
        .unwrap_or_else(|error| panic!("{shown} is not a PNG: {error}"));
    let info = reader.info();
    assert_eq!(info.width, width, "{shown}: the width");
    assert!(
        (200..=2400).contains(&info.height),
        "{shown}: a height of {} pixels",
        info.height
    );
    let mut pixels = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let frame = reader.next_frame(&mut pixels).expect("the pixels");
    let channels = frame.color_type.samples();
    assert_eq!(frame.bit_depth, png::BitDepth::Eight, "{shown}");
    let mut counts = std::collections::HashMap::<&[u8], usize>::new();
    for pixel in pixels[..frame.buffer_size()].chunks_exact(channels) {
        *counts.entry(pixel).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let background = counts.values().copied().max().unwrap_or_default();
    assert!(
        counts.len() >= 16,
        "{shown} has {} colours: a blank page",
        counts.len()
    );
    assert!(
        (total - background) * 100 >= total * 3,
        "{shown}: {} of {total} pixels differ from the background: a blank page",
        total - background
    );
}
