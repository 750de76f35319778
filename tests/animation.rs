//! Animated GIF/WebP through the real binary (FIX of spec §14 item 10, imaginary #215): they
//! stay animated when the output is GIF or WebP, other outputs get the first frame; and the
//! caps on frames and output size (FIX of spec §14 item 4). Inputs are generated with libvips.

mod common;

use common::Imgedge;
use imgedge::ops::vips::{Access, FailOn, Image, Saver};

/// `n` different `w`×`h` frames, 100/200/300 ms each in turn, looping forever, as a GIF.
fn gif_of(n: usize, w: u32, h: u32) -> Vec<u8> {
    let a = Image::test_pattern(w, h, 3).unwrap();
    let kinds = [a.clone(), a.flip(false).unwrap(), a.flip(true).unwrap()];
    let frames: Vec<Image> = (0..n).map(|i| kinds[i % 3].clone()).collect();
    let delays: Vec<i32> = (0..n).map(|i| [100, 200, 300][i % 3]).collect();
    Image::join_frames(&frames)
        .unwrap()
        .with_animation(&delays, Some(0))
        .unwrap()
        .save(&Saver::Gif, false)
        .unwrap()
}

/// Three 100×60 frames.
fn animated_gif() -> Vec<u8> {
    gif_of(3, 100, 60)
}

/// What a GIF file says, read block by block (no decoder): the logical screen size, each
/// frame's delay (centiseconds, from its Graphic Control Extension) and whether a NETSCAPE2.0
/// loop extension is present.
#[derive(Debug, PartialEq)]
struct GifInfo {
    width: u16,
    height: u16,
    delays: Vec<u16>,
    loops: bool,
}

fn read_gif(b: &[u8]) -> GifInfo {
    assert!(
        b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a"),
        "not a GIF"
    );
    let u16le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let (width, height) = (u16le(6), u16le(8));
    let mut i = 13;
    if b[10] & 0x80 != 0 {
        i += 3 << ((b[10] & 7) + 1);
    }
    // sub-blocks until the empty one; returns the index after it
    let skip_blocks = |mut i: usize| {
        while b[i] != 0 {
            i += b[i] as usize + 1;
        }
        i + 1
    };
    let (mut delays, mut loops, mut pending_delay) = (Vec::new(), false, 0u16);
    loop {
        match b[i] {
            0x21 => {
                let label = b[i + 1];
                if label == 0xF9 {
                    pending_delay = u16le(i + 4);
                }
                if label == 0xFF && &b[i + 3..i + 14] == b"NETSCAPE2.0" {
                    loops = true;
                }
                i = skip_blocks(i + 2);
            }
            0x2C => {
                delays.push(pending_delay);
                pending_delay = 0;
                let packed = b[i + 9];
                i += 10;
                if packed & 0x80 != 0 {
                    i += 3 << ((packed & 7) + 1);
                }
                i = skip_blocks(i + 1); // LZW minimum code size, then the data
            }
            0x3B => break,
            other => panic!("unexpected GIF block 0x{other:02x} at {i}"),
        }
    }
    GifInfo {
        width,
        height,
        delays,
        loops,
    }
}

/// RIFF chunk ids of a WebP file, in order (top level and inside ANIM frames' parent).
fn webp_chunks(b: &[u8]) -> Vec<String> {
    assert!(b.starts_with(b"RIFF") && &b[8..12] == b"WEBP", "not a WebP");
    let mut ids = Vec::new();
    let mut i = 12;
    while i + 8 <= b.len() {
        ids.push(String::from_utf8_lossy(&b[i..i + 4]).into_owned());
        let size = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        i += 8 + size + (size & 1);
    }
    ids
}

#[test]
fn animated_gif_resized_stays_an_animated_gif() {
    let s = Imgedge::start(&["-return-size"]);
    let input = animated_gif();
    assert_eq!(
        read_gif(&input),
        GifInfo {
            width: 100,
            height: 60,
            delays: vec![10, 20, 30],
            loops: true
        }
    );

    let r = s.post("/resize?width=50", "image/gif", &input);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/gif"));
    assert_eq!(
        read_gif(&r.body),
        GifInfo {
            width: 50,
            height: 30,
            delays: vec![10, 20, 30],
            loops: true
        }
    );
    // the size headers describe one frame
    assert_eq!(r.header("image-width"), Some("50"));
    assert_eq!(r.header("image-height"), Some("30"));
    // libvips agrees: three frames of 50×30
    let all = Image::load_pages(r.body.clone().into(), Access::Random, FailOn::None).unwrap();
    assert_eq!((all.width(), all.page_height(), all.frames()), (50, 30, 3));
    assert_eq!(
        Image::load_bytes(&r.body, Access::Random)
            .unwrap()
            .n_pages(),
        3
    );

    // per-frame geometry: crop to a square on every frame
    let r = s.post("/crop?width=40&height=40", "image/gif", &input);
    let info = read_gif(&r.body);
    assert_eq!((info.width, info.height, info.delays.len()), (40, 40, 3));
}

#[test]
fn animated_gif_to_webp_is_an_animated_webp() {
    let s = Imgedge::start(&[]);
    let r = s.post("/resize?width=50&type=webp", "image/gif", &animated_gif());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/webp"));
    let chunks = webp_chunks(&r.body);
    assert!(chunks.contains(&"ANIM".to_string()), "{chunks:?}");
    assert_eq!(
        chunks.iter().filter(|c| *c == "ANMF").count(),
        3,
        "{chunks:?}"
    );
    let all = Image::load_pages(r.body.clone().into(), Access::Random, FailOn::None).unwrap();
    assert_eq!((all.width(), all.page_height(), all.frames()), (50, 30, 3));
    assert_eq!(all.delays(), vec![100, 200, 300]);
}

#[test]
fn jpeg_output_and_info_describe_the_first_frame() {
    let s = Imgedge::start(&[]);
    let input = animated_gif();
    let r = s.post("/resize?width=50&type=jpeg", "image/gif", &input);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.size(), (50, 30));
    let info = s.post("/info", "image/gif", &input).json();
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(100), Some(60))
    );
    assert_eq!(info["type"], "gif");
}

#[test]
fn caps_refuse_frame_bombs_and_giant_outputs_before_any_work() {
    let s = Imgedge::start(&[]);
    // 1001 frames: refused when all would be loaded, fine when only the first is needed
    // (tiny frames: cgif quantises every frame, ~15 ms each even when small)
    let many = gif_of(1001, 4, 4);
    assert_eq!(
        s.post("/resize?width=2", "image/gif", &many).error(400),
        "Error while processing the image: Too many frames in the animation: 1001 (at most 1000)"
    );
    assert_eq!(
        s.post("/resize?width=2&type=png", "image/gif", &many)
            .size(),
        (2, 2)
    );
    // a zoom to 100×60 × 2001² ≈ 24 Tpx is refused before any work: only the limits' check
    // gives this message, and rendering first would outlast the client's timeout
    let still = Image::test_pattern(100, 60, 3)
        .unwrap()
        .save(
            &Saver::Jpeg {
                quality: 80,
                interlace: false,
            },
            false,
        )
        .unwrap();
    assert_eq!(
        s.post("/zoom?factor=2000", "image/jpeg", &still).error(400),
        "Error while processing the image: Maximum image size exceeded"
    );
    assert_eq!(
        s.post("/thumbnail?width=20000&height=20000", "image/jpeg", &still)
            .error(400),
        "Error while processing the image: Maximum image size exceeded"
    );
}
