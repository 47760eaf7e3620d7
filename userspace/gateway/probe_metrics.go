package gateway

import "github.com/xwan-dev/xwan/userspace/metrics"

// fillProbeMetrics adds a path's probe measurements; none exist yet.
func (g *Gateway) fillProbeMetrics(p *path, m *metrics.Path) {}
