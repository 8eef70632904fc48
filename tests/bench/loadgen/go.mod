module switchman.dev/bench/loadgen

go 1.22
