//! A tap off a track: a bin with a `sink` pad (to link to the track's tee) holding a leaky
//! queue, the converters given, and an appsink that hands each sample to a callback on the
//! streaming thread. The leaky queue means a slow consumer loses samples, never stalls the track.

use super::make;
use anyhow::Context;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

/// How much the queue holds before it drops the oldest.
pub enum Backlog {
    Buffers(u32),
    Time(gst::ClockTime),
}

/// The tap bin and its queue (whose src pad may take a probe).
pub fn tap_bin(
    name: &str,
    backlog: Backlog,
    converters: &[gst::Element],
    on_sample: impl Fn(&gst::Sample) + Send + Sync + 'static,
) -> anyhow::Result<(gst::Bin, gst::Element)> {
    let bin = gst::Bin::with_name(name);
    let queue = make("queue")?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-bytes", 0u32);
    let (buffers, time) = match backlog {
        Backlog::Buffers(n) => (n, 0),
        Backlog::Time(t) => (0, t.nseconds()),
    };
    queue.set_property("max-size-buffers", buffers);
    queue.set_property("max-size-time", time);
    let sink = gst_app::AppSink::builder().sync(false).async_(false).build();
    let chain: Vec<&gst::Element> = std::iter::once(&queue)
        .chain(converters)
        .chain(std::iter::once(sink.upcast_ref()))
        .collect();
    bin.add_many(chain.iter().copied())?;
    gst::Element::link_many(chain)?;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                on_sample(&sample);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let entry = queue.static_pad("sink").context("queue without sink")?;
    let ghost = gst::GhostPad::builder_with_target(&entry)?.name("sink").build();
    bin.add_pad(&ghost)?;
    Ok((bin, queue))
}
