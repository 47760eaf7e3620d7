package loader

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// xdpMD is struct xdp_md, the context of an XDP test run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// TestRun runs the LAN program once on a frame with BPF_PROG_TEST_RUN and
// returns its action and the metadata it wrote, if any. Nothing is sent:
// a redirect is only reported.
func (d *Datapath) TestRun(frame []byte) (verdict.Action, *verdict.Meta, error) {
	return testRun(d.objs.XdpLan, frame)
}

func testRun(p *ebpf.Program, frame []byte) (verdict.Action, *verdict.Meta, error) {
	out := make([]byte, len(frame)+256)
	var ctxOut xdpMD
	ret, err := p.Run(&ebpf.RunOptions{
		Data:       frame,
		DataOut:    out,
		Context:    xdpMD{DataEnd: uint32(len(frame))},
		ContextOut: &ctxOut,
	})
	if err != nil {
		return 0, nil, err
	}
	// The output starts at the metadata; ctxOut.Data is its length.
	metaLen := int(ctxOut.Data)
	if metaLen == 0 {
		return verdict.Action(ret), nil, nil
	}
	if metaLen != verdict.MetaLen || metaLen > len(out) {
		return 0, nil, fmt.Errorf("metadata of %d bytes, want %d", metaLen, verdict.MetaLen)
	}
	m, err := verdict.ParseMeta(out[:metaLen])
	if err != nil {
		return 0, nil, err
	}
	return verdict.Action(ret), &m, nil
}

// BaselineProgram loads the benchmark's baseline, an XDP program that only
// returns XDP_PASS. The caller closes it.
func BaselineProgram() (*ebpf.Program, error) {
	var objs benchpassObjects
	if err := loadBenchpassObjects(&objs, nil); err != nil {
		return nil, err
	}
	return objs.XdpPass, nil
}

// FlowCount returns the number of entries in the flow cache.
func (d *Datapath) FlowCount() (int, error) {
	n := 0
	var k FlowKey
	var e FlowEntry
	it := d.objs.Flows.Iterate()
	for it.Next(&k, &e) {
		n++
	}
	return n, it.Err()
}
