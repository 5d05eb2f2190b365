package mixer

// talkDetector decides whether a participant is talking from the energy of its
// frames: talking starts after onset frames in a row above the threshold, and
// stops only after hangover frames in a row below it, so that the pauses
// between words do not make the indication flicker.
type talkDetector struct {
	threshold int64 // mean square per sample
	onset     int
	hangover  int

	talking bool
	run     int // frames in a row on the other side of the threshold
}

// update feeds one frame's mean square (or -1 for no frame) and reports whether
// the talking state changed.
func (d *talkDetector) update(meanSquare int64) bool {
	loud := meanSquare >= d.threshold
	if loud == d.talking {
		d.run = 0
		return false
	}
	d.run++
	need := d.onset
	if d.talking {
		need = d.hangover
	}
	if d.run < need {
		return false
	}
	d.talking, d.run = loud, 0
	return true
}

// meanSquare is the frame's energy per sample; int64 since 160 full-scale
// squares overflow int32.
func meanSquare(f *[FrameSamples]int16) int64 {
	var sum int64
	for _, s := range f {
		sum += int64(s) * int64(s)
	}
	return sum / FrameSamples
}
