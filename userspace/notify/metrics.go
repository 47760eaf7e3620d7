package notify

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type notifyMetrics struct {
	deliveries *prometheus.CounterVec
}

func newNotifyMetrics(channels []string) *notifyMetrics {
	m := &notifyMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xwan_notify_deliveries_total",
			Help: "Notification deliveries (webhook calls, e-mails) by result: ok, or failed after every attempt.",
		}, []string{"channel", "result"}),
	}
	for _, c := range channels {
		m.deliveries.WithLabelValues(c, "ok")
		m.deliveries.WithLabelValues(c, "failed")
	}
	return m
}

func (m *notifyMetrics) register(r prometheus.Registerer) error {
	return errors.Join(r.Register(m.deliveries))
}

func (m *notifyMetrics) delivered(channel string, ok bool) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.deliveries.WithLabelValues(channel, result).Inc()
}
