package loader

// The BPF objects are built by bpf2go from bpf/*.c; the generated
// *_bpfel.go and *_bpfel.o are committed so `go build` needs no clang.
// `make generate` reruns this.
//go:generate go tool bpf2go -target bpfel -type xwan_meta -type prefix_key -type dest_info -type rule_prefix_key -type rule_action -type rule_bitmap -type xwan_settings -type site_link_key -type site_table -type path_info -type flow_key -type flow_entry -type counter xdplan ../bpf/xdp_lan.c -- -I/usr/include/x86_64-linux-gnu -Wall -Werror
//go:generate go tool bpf2go -target bpfel -type wan_settings -type peer_key -type peer_info xdpwan ../bpf/xdp_wan.c -- -I/usr/include/x86_64-linux-gnu -Wall -Werror
//go:generate go tool bpf2go -target bpfel benchpass ../bpf/bench_pass.c -- -I/usr/include/x86_64-linux-gnu -Wall -Werror
