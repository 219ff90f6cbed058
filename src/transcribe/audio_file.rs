//! Any audio file GStreamer can decode, as the 16 kHz mono samples Whisper takes.

use super::model::SAMPLE_RATE;
use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::Path;

pub fn read_speech(path: &Path) -> anyhow::Result<Vec<f32>> {
    gst::init()?;
    anyhow::ensure!(path.is_file(), "{} is not a file", path.display());
    let pipeline = gst::Pipeline::new();
    let source = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().context("the path is not UTF-8")?)
        .build()?;
    let decode = gst::ElementFactory::make("decodebin").build()?;
    let convert = gst::ElementFactory::make("audioconvert").build()?;
    let resample = gst::ElementFactory::make("audioresample").build()?;
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", SAMPLE_RATE as i32)
        .field("channels", 1)
        .field("layout", "interleaved")
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    pipeline.add_many([&source, &decode, &convert, &resample, sink.upcast_ref()])?;
    source.link(&decode)?;
    gst::Element::link_many([&convert, &resample, sink.upcast_ref()])?;
    let convert_sink = convert
        .static_pad("sink")
        .context("audioconvert has no sink pad")?;
    decode.connect_pad_added(move |_, pad| {
        if !convert_sink.is_linked() {
            let _ = pad.link(&convert_sink);
        }
    });
    pipeline.set_state(gst::State::Playing)?;
    let mut samples = Vec::new();
    let outcome = loop {
        match sink.pull_sample() {
            Ok(sample) => {
                let buffer = sample.buffer().context("a sample without a buffer")?;
                let map = buffer.map_readable()?;
                samples.extend(
                    map.as_slice()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            Err(_) => break pipeline_error(&pipeline),
        }
    };
    pipeline.set_state(gst::State::Null)?;
    outcome.with_context(|| format!("cannot decode {}", path.display()))?;
    Ok(samples)
}

/// The error the pipeline posted, if it ended on one rather than at the end of the file.
fn pipeline_error(pipeline: &gst::Pipeline) -> anyhow::Result<()> {
    let bus = pipeline.bus().context("the pipeline has no bus")?;
    while let Some(message) = bus.pop() {
        if let gst::MessageView::Error(error) = message.view() {
            anyhow::bail!("{}", error.error());
        }
    }
    Ok(())
}
