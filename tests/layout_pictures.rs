//! Reference pictures of the layouts: each scene is drawn without the media graph (video tiles
//! as flat colours) and compared with a PNG under `fixtures/layouts/`. Run with
//! `EGRESS_UPDATE_REFERENCES=1` to rewrite them after a deliberate change, then look at them.

use egress::layout::{LayoutPlan, ParticipantView, Rgba};
use egress::render::{Assets, load_font, load_logo, picture, sprites};
use image::RgbaImage;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const COLOURS: [u32; 6] = [0xe53935, 0x1e88e5, 0x43a047, 0xfdd835, 0x8e24aa, 0xfb8c00];
const SCREEN: u32 = 0x90a4ae;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `n` participants named after people, with cameras unless listed in `no_video`.
fn call(n: usize, no_video: &[usize]) -> Vec<ParticipantView> {
    const NAMES: [&str; 8] = [
        "Ada Lovelace",
        "Grace Hopper",
        "Alan Turing",
        "Edsger Dijkstra",
        "Barbara Liskov",
        "Donald Knuth",
        "Frances Allen",
        "Ken Thompson",
    ];
    (0..n)
        .map(|i| ParticipantView {
            user_id: format!("u{i}"),
            name: NAMES[i % NAMES.len()].into(),
            has_audio: true,
            camera: (!no_video.contains(&i)).then(|| format!("u{i}/camera")),
            ..Default::default()
        })
        .collect()
}

fn colour_of(input: &str) -> Rgba {
    if input.ends_with("/screenshare") {
        return Rgba::opaque(SCREEN);
    }
    let index: usize = input[1..input.find('/').unwrap()].parse().unwrap();
    Rgba::opaque(COLOURS[index % COLOURS.len()])
}

fn render(layout: &str, options: Value, participants: &[ParticipantView], size: (u32, u32)) -> RgbaImage {
    let options = options.as_object().unwrap().clone().into_iter().collect();
    let plan = LayoutPlan::new(layout, &options).expect("valid layout");
    let scene = plan.scene(participants, size.0, size.1);
    let font = load_font().expect("the label font (fonts-dejavu-core) is installed");
    let logo = scene
        .logo
        .as_ref()
        .map(|l| load_logo(&l.url, &fixtures()).expect("logo loads"));
    let assets = Assets {
        font: Some(&font),
        logo: logo.as_ref(),
    };
    picture(&scene, &sprites(&scene, &assets), colour_of)
}

/// Compares with the reference: at most 0.2% of pixels may differ by more than 8 levels.
fn check(name: &str, image: RgbaImage) {
    let path = fixtures().join("layouts").join(format!("{name}.png"));
    if std::env::var_os("EGRESS_UPDATE_REFERENCES").is_some() {
        image.save(&path).unwrap();
        return;
    }
    let reference = image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "reference {} missing ({e}); run with EGRESS_UPDATE_REFERENCES=1",
                path.display()
            )
        })
        .to_rgba8();
    assert_eq!(reference.dimensions(), image.dimensions(), "{name}: size");
    let differing = reference
        .pixels()
        .zip(image.pixels())
        .filter(|(a, b)| a.0.iter().zip(b.0.iter()).any(|(x, y)| x.abs_diff(*y) > 8))
        .count();
    let allowed = (image.width() * image.height()) as usize / 500;
    if differing > allowed {
        let seen = std::env::temp_dir().join(format!("egress-{name}-seen.png"));
        image.save(&seen).unwrap();
        panic!(
            "{name}: {differing} pixels differ from {}; what was drawn is at {}",
            path.display(),
            seen.display()
        );
    }
}

const LANDSCAPE: (u32, u32) = (1280, 720);
const PORTRAIT: (u32, u32) = (720, 1280);

#[test]
fn grid_of_four_with_a_placeholder_and_a_speaker() {
    let mut people = call(4, &[2]);
    people[1].speaking = true;
    check("grid-4", render("grid", json!({}), &people, LANDSCAPE));
}

#[test]
fn grid_options_restyle_everything() {
    let options = json!({
        "video.background_color": "#f2f2f2",
        "grid.cell_padding": 24,
        "grid.size_percentage": 100,
        "participant.aspect_ratio": "4/3",
        "participant.video_border_color": "#37474f",
        "participant.video_border_width": 6,
        "participant.video_border_radius": 2.5,
        "participant.placeholder_background_color": "#ffe082",
        "participant.label_background_color": "#263238cc",
        "participant.label_text_color": "#ffffff",
        "participant.label_border_color": "#ffffff",
        "participant.label_horizontal_position": "center",
        "participant.label_vertical_position": "top",
    });
    check("grid-styled", render("grid", options, &call(5, &[4]), LANDSCAPE));
}

#[test]
fn grid_in_portrait() {
    check(
        "grid-portrait",
        render("grid", json!({}), &call(5, &[]), PORTRAIT),
    );
}

#[test]
fn spotlight_with_the_bar_at_each_side() {
    for side in ["top", "bottom", "left", "right"] {
        let options = json!({ "grid.position": side, "participant.label_text_color": "#ffffff" });
        let mut people = call(5, &[]);
        people[0].dominant = true;
        people[0].speaking = true;
        check(
            &format!("spotlight-{side}"),
            render("spotlight", options, &people, LANDSCAPE),
        );
    }
}

#[test]
fn spotlight_on_a_screen_share() {
    let mut people = call(3, &[]);
    people[1].screenshare = Some("u1/screenshare".into());
    check(
        "spotlight-screenshare",
        render(
            "grid",
            json!({ "participant.label_text_color": "#ffffff" }),
            &people,
            LANDSCAPE,
        ),
    );
}

#[test]
fn single_participant_with_a_screen_share_and_padding() {
    let mut people = call(3, &[]);
    people[2].screenshare = Some("u2/screenshare".into());
    let options =
        json!({ "layout.single-participant.padding_inline": "10%", "video.background_color": "#102027" });
    check(
        "single-screenshare",
        render("single-participant", options, &people, LANDSCAPE),
    );
}

#[test]
fn single_participant_pinned_without_video() {
    let mut people = call(3, &[1]);
    people[1].pinned = true;
    let options = json!({ "participant.placeholder_background_color": "#1f1f1f", "participant.label_text_color": "#ffffff" });
    check(
        "single-placeholder",
        render("single-participant", options, &people, LANDSCAPE),
    );
}

#[test]
fn mobile_in_portrait() {
    check(
        "mobile-portrait",
        render("mobile", json!({}), &call(4, &[3]), PORTRAIT),
    );
}

#[test]
fn label_positions_and_no_border() {
    let options = json!({
        "participant.label_horizontal_position": "right",
        "participant.label_vertical_position": "center",
        "participant.label_display_border": false,
        "participant.label_background_color": "#000000aa",
        "participant.label_text_color": "#fdd835",
        "participant.label_border_rounded": false,
        "participant.video_border_rounded": false,
    });
    check(
        "labels-right-center",
        render("grid", options, &call(2, &[]), LANDSCAPE),
    );
}

#[test]
fn logo_and_title_in_the_seed_example() {
    let options = json!({
        "logo.image_url": "logo.png",
        "logo.horizontal_position": "center",
        "title.text": "Building Stream Video Q&A",
        "title.horizontal_position": "center",
        "title.color": "black",
        "participant_label.border_radius": "0px",
        "participant.border_radius": "0px",
        "layout.spotlight.participants_bar_position": "top",
        "layout.background_color": "#f2f2f2",
        "participant.placeholder_background_color": "#1f1f1f",
        "participant_label.background_color": "transparent",
    });
    check(
        "spotlight-seed-example",
        render("spotlight", options, &call(4, &[2]), LANDSCAPE),
    );
    let corner = json!({ "logo.image_url": "logo.png", "logo.horizontal_position": "right", "logo.vertical_position": "bottom",
                         "title.text": "Weekly sync", "title.horizontal_position": "left", "title.vertical_position": "bottom" });
    check("logo-corner", render("grid", corner, &call(2, &[]), LANDSCAPE));
}
