module piano/bench/loadgen

go 1.19
