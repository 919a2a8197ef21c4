// What the far end sounds like, measured with WebAudio: the loudest frequency
// and its level (a level meter and the tests read it).
export class Meter {
  constructor() { this.context = null; this.analyser = null; }

  listen(stream) {
    this.stop();
    this.context = new AudioContext();
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 4096;
    this.context.createMediaStreamSource(stream).connect(this.analyser);
    this.context.resume();
  }

  // {frequency (Hz), level (dBFS)} of the loudest bin now; null when not listening.
  loudest() {
    if (!this.analyser) return null;
    const bins = new Float32Array(this.analyser.frequencyBinCount);
    this.analyser.getFloatFrequencyData(bins);
    let best = 1;
    for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    return { frequency: best * this.context.sampleRate / this.analyser.fftSize, level: bins[best] };
  }

  // The signal's RMS level now (0 … 1); 0 when not listening.
  rms() {
    if (!this.analyser) return 0;
    const samples = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(samples);
    return Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
  }

  stop() {
    if (this.context) this.context.close();
    this.context = null;
    this.analyser = null;
  }
}
