package gateway

import (
	"time"

	"github.com/xwan-dev/xwan/userspace/metrics"
)

// fillProbeMetrics adds a path's probe measurements.
func (g *Gateway) fillProbeMetrics(p *path, m *metrics.Path) {
	st := p.prober.Stats(time.Now())
	if st.Samples == 0 {
		return
	}
	m.RTT = st.RTTMean.Seconds()
	m.Jitter = st.Jitter.Seconds()
	m.Loss = st.Loss
}
