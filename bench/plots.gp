# gnuplot script of `make bench`, run in the results directory on the
# plot-*.dat files written by bench/report.py (a missing file, i.e. a step
# that was not run, skips its plot).  Writes perftest_bw.png,
# perftest_lat.png, registration.png and stream_cold_warm.png.
set datafile missing "NaN"
set logscale x 2
set grid
set key top left
msgtics = '("64 B" 64, "4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576)'
regtics = '("4K" 4096, "64K" 65536, "1M" 1048576, "16M" 16777216, "256M" 268435456, "1G" 1073741824, "16G" 17179869184, "256G" 274877906944, "1T" 1099511627776)'
has(f) = system("test -s " . f . " && echo 1 || echo 0") eq "1"

# perftest bandwidth: pinned (solid) against warm ODP (dashed)
if (has("plot-pt-bw.dat")) {
	set terminal pngcairo size 960,330 font "DejaVu Sans,9" noenhanced
	set output "perftest_bw.png"
	set key bottom right
	eval "set xtics " . msgtics
	set multiplot layout 1,3 title "perftest bandwidth (MiB/s, median of the repetitions)"
	set xlabel "message size"
	set ylabel "MiB/s"
	set title "ib_write_bw"
	plot "plot-pt-bw.dat" u 1:2 w lp lw 2 pt 7 t "pinned", "" u 1:3 w lp lw 2 pt 6 dt 2 t "ODP warm"
	set title "ib_read_bw"
	unset ylabel
	plot "plot-pt-bw.dat" u 1:4 w lp lw 2 pt 7 t "pinned", "" u 1:5 w lp lw 2 pt 6 dt 2 t "ODP warm"
	set title "ib_send_bw"
	plot "plot-pt-bw.dat" u 1:6 w lp lw 2 pt 7 t "pinned", "" u 1:7 w lp lw 2 pt 6 dt 2 t "ODP warm"
	unset multiplot
}

# perftest latency
if (has("plot-pt-lat.dat")) {
	set terminal pngcairo size 720,330 font "DejaVu Sans,9" noenhanced
	set output "perftest_lat.png"
	set key top left
	eval "set xtics " . msgtics
	set multiplot layout 1,2 title "perftest latency (fastest iteration, µs; median of the repetitions)"
	set logscale y 10
	set xlabel "message size"
	set ylabel "µs"
	set title "ib_write_lat"
	plot "plot-pt-lat.dat" u 1:2 w lp lw 2 pt 7 t "pinned", "" u 1:3 w lp lw 2 pt 6 dt 2 t "ODP warm"
	set title "ib_read_lat"
	unset ylabel
	plot "plot-pt-lat.dat" u 1:4 w lp lw 2 pt 7 t "pinned", "" u 1:5 w lp lw 2 pt 6 dt 2 t "ODP warm"
	unset multiplot
	unset logscale y
}

# registration time against size
if (has("plot-reg.dat")) {
	set terminal pngcairo size 560,330 font "DejaVu Sans,9" noenhanced
	set output "registration.png"
	set key top left
	eval "set xtics " . regtics
	set title "ibv_reg_mr time against MR size"
	set xlabel "MR size"
	set ylabel "µs"
	set logscale y 10
	plot "plot-reg.dat" u 1:2 w lp lw 2 pt 7 t "pinned (populated memory)", \
	     "" u 1:3 w lp lw 2 pt 6 dt 2 t "ODP"
	unset logscale y
}

# streams: pinned, warm and cold ODP
if (has("plot-stream.dat")) {
	set terminal pngcairo size 960,330 font "DejaVu Sans,9" noenhanced
	set output "stream_cold_warm.png"
	set key bottom right
	eval "set xtics " . msgtics
	set multiplot layout 1,3 title "RDMA streams over fresh memory: pinned, ODP warm, ODP cold (MiB/s)"
	set xlabel "message size"
	set ylabel "MiB/s"
	set title "WRITE"
	plot "plot-stream.dat" u 1:2 w lp lw 2 pt 7 t "pinned", "" u 1:3 w lp lw 2 pt 6 dt 2 t "ODP warm", "" u 1:4 w lp lw 2 pt 4 dt 3 t "ODP cold"
	unset ylabel
	set title "READ"
	plot "plot-stream.dat" u 1:5 w lp lw 2 pt 7 t "pinned", "" u 1:6 w lp lw 2 pt 6 dt 2 t "ODP warm", "" u 1:7 w lp lw 2 pt 4 dt 3 t "ODP cold"
	set title "SEND"
	plot "plot-stream.dat" u 1:8 w lp lw 2 pt 7 t "pinned", "" u 1:9 w lp lw 2 pt 6 dt 2 t "ODP warm", "" u 1:10 w lp lw 2 pt 4 dt 3 t "ODP cold"
	unset multiplot
}
