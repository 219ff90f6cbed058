// Plays an HLS master playlist with hls.js in headless Chromium and reports what a viewer sees:
// the renditions offered, whether playback time advances, and whether a switch of rendition
// reaches the picture. Usage: node play_hls.js MASTER_URL HLS_JS_PATH CHROMIUM_PATH
const { chromium } = require('playwright-core');

const [masterUrl, hlsJsPath, chromiumPath] = process.argv.slice(2);
const origin = new URL(masterUrl).origin;

(async () => {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
  });
  const report = { errors: [] };
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => report.errors.push(String(e)));
    // The player page is served from the same origin as the playlists, so no CORS is involved.
    await page.route(`${origin}/__player.html`, (route) =>
      route.fulfill({ contentType: 'text/html', body: '<html><body><video id="v" muted></video></body></html>' }));
    await page.goto(`${origin}/__player.html`);
    await page.addScriptTag({ path: hlsJsPath });
    Object.assign(report, await page.evaluate(async (url) => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const video = document.getElementById('v');
      const out = {
        supported: Hls.isSupported(),
        levels: [], times: [], hlsErrors: [], switched: null,
      };
      if (!out.supported) return out;
      const hls = new Hls({ capLevelToPlayerSize: false, startLevel: 0 });
      hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) out.hlsErrors.push(`${d.type}: ${d.details}`); });
      const parsed = new Promise((resolve) => hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => resolve(d)));
      hls.loadSource(url);
      hls.attachMedia(video);
      const manifest = await Promise.race([parsed, sleep(10000).then(() => null)]);
      if (!manifest) { out.hlsErrors.push('manifest not parsed within 10 s'); return out; }
      out.levels = hls.levels.map((l) => ({ width: l.width, height: l.height, bitrate: l.bitrate, codecs: `${l.videoCodec},${l.audioCodec}` }));
      hls.autoLevelEnabled = false;
      hls.currentLevel = 0;
      video.play().catch((e) => out.hlsErrors.push(`play: ${e}`));
      for (let i = 0; i < 8; i++) { await sleep(500); out.times.push(video.currentTime); }
      out.heightBefore = video.videoHeight;
      const target = hls.levels.length - 1;
      const switched = new Promise((resolve) => hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => resolve(d.level)));
      hls.currentLevel = target;
      out.switched = await Promise.race([switched, sleep(8000).then(() => null)]);
      for (let i = 0; i < 40 && video.videoHeight !== hls.levels[target].height; i++) await sleep(250);
      for (let i = 0; i < 4; i++) { await sleep(500); out.times.push(video.currentTime); }
      out.heightAfter = video.videoHeight;
      out.decodedFrames = video.getVideoPlaybackQuality().totalVideoFrames;
      return out;
    }, masterUrl));
  } catch (e) {
    report.errors.push(String(e));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(report));
})();
