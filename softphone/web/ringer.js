// The ringtone of an incoming call: 425 Hz, one second on, three off,
// made with WebAudio (no file to fetch).
export class Ringer {
  constructor() { this.context = null; this.timer = null; }

  get ringing() { return this.context !== null; }

  start() {
    if (this.context) return;
    this.context = new AudioContext();
    const burst = () => {
      const tone = this.context.createOscillator();
      const gain = this.context.createGain();
      tone.frequency.value = 425;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(this.context.destination);
      tone.start();
      tone.stop(this.context.currentTime + 1);
    };
    burst();
    this.timer = setInterval(burst, 4000);
  }

  stop() {
    if (!this.context) return;
    clearInterval(this.timer);
    this.context.close();
    this.context = null;
    this.timer = null;
  }
}
