#!/usr/bin/env bash
# Draws siam's pictures with gnuplot:
#   scripts/plot.sh --metrics metrics.csv --eval-dir DIR --out DIR
#     --metrics FILE.csv  a metrics CSV of siam-train / siam-client (--metrics)  -> OUT/loss.png
#     --eval-dir DIR      the --plots-dir of `siam-client evaluate`  -> OUT/distances.png,
#                         OUT/predictions.png and OUT/embeddings.png
#     --out DIR           where the PNGs go (created if missing; default: the current directory)
# At least one of --metrics and --eval-dir. Needs gnuplot (apt-get install gnuplot-nox, or
# scripts/install-deps.sh). Each PNG is drawn to a temporary name and renamed into place.
set -euo pipefail
prog=plot.sh
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "$prog: $*" >&2; exit 1; }

metrics="" eval_dir="" out="."
while [ $# -gt 0 ]; do
  case "$1" in
    --metrics|--eval-dir|--out)
      [ $# -ge 2 ] && [ -n "$2" ] || { echo "$prog: $1 needs a value (see --help)" >&2; exit 2; }
      case "$1" in --metrics) metrics=$2 ;; --eval-dir) eval_dir=$2 ;; --out) out=$2 ;; esac
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "$prog: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$metrics" ] || [ -n "$eval_dir" ] || { echo "$prog: give --metrics FILE.csv and/or --eval-dir DIR (see --help)" >&2; exit 2; }

command -v gnuplot >/dev/null 2>&1 ||
  die "gnuplot is not installed; install it with: apt-get install gnuplot-nox (or run scripts/install-deps.sh)"
if [ -n "$metrics" ]; then
  [ -f "$metrics" ] || die "--metrics $metrics: no such file (write one with siam-train --metrics FILE.csv)"
  head -1 "$metrics" | grep -q '^kind,epoch,step,loss,val_loss' ||
    die "--metrics $metrics: not a siam metrics CSV (its header is not kind,epoch,step,loss,val_loss,...)"
  grep -q '^epoch,' "$metrics" || die "--metrics $metrics: no epoch rows (did the run finish an epoch?)"
fi
if [ -n "$eval_dir" ]; then
  for f in distances.tsv threshold.txt predictions.tsv predictions_images.dat embeddings.tsv; do
    [ -s "$eval_dir/$f" ] ||
      die "--eval-dir $eval_dir: $f is missing (write it with: siam-client evaluate --checkpoint PATH --plots-dir $eval_dir)"
  done
fi
mkdir -p "$out" || die "cannot create --out $out"

term="png"
gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo && term="pngcairo"
font='font "sans,11"'
[ "$term" = pngcairo ] || font=""

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# draw NAME SCRIPT: runs gnuplot with the terminal set, output to OUT/NAME atomically
draw() {
  local name=$1 script=$2 size=$3
  local part="$out/.$name.tmp.$$"
  if ! gnuplot >"$tmp/gnuplot.log" 2>&1 <<EOF
set terminal $term size $size $font
set output "$part"
$script
set output
EOF
  then
    rm -f "$part"
    cat "$tmp/gnuplot.log" >&2
    die "gnuplot failed to draw $name"
  fi
  mv -f "$part" "$out/$name"
  echo "$prog: wrote $out/$name"
}

# ---- loss.png: training loss and validation loss per epoch, step losses lightly ----
if [ -n "$metrics" ]; then
  # '?' (missing) where an epoch was not evaluated on the test pairs (--eval-every)
  awk -F, '$1 == "epoch" { for (i = 5; i <= 7; i++) if ($i == "") $i = "?"; print $2, $4, $5, $6, $7 }' \
    "$metrics" >"$tmp/epochs.dat"
  # steps per epoch: the global step at the end of the first epoch row over its epoch; step rows
  # at step / that
  spe=$(awk -F, '$1 == "epoch" && $2 > 0 { print $3 / $2; exit }' "$metrics")
  # a blank line between epochs: the running mean starts again with every epoch
  awk -F, -v spe="$spe" '$1 == "step" && spe > 0 {
      if (NR > 2 && $2 != last) print ""; last = $2; print $3 / spe, $4 }' "$metrics" >"$tmp/steps.dat"
  n_epochs=$(awk 'END { print $1 + 0 }' "$tmp/epochs.dat")
  steps_plot=""
  [ -s "$tmp/steps.dat" ] &&
    steps_plot="'$tmp/steps.dat' using 1:2 with lines lw 1 lc rgb '#9ecae1' title 'training loss, running mean within the epoch (every 50 steps)', "
  draw loss.png "
set title 'Loss per epoch ($n_epochs epoch(s), $(basename "$metrics"))'
set xlabel 'epoch'
set ylabel 'loss'
set datafile missing '?'
set grid lc rgb '#dddddd'
set key top right box opaque
set xrange [0:$n_epochs * 1.04 + 0.02]
set yrange [0:*]
set xtics $([ "$n_epochs" -le 20 ] && echo 1 || echo autofreq)
plot $steps_plot \
     '$tmp/epochs.dat' using 1:2 with linespoints lw 2 pt 7 ps 1.2 lc rgb '#1f77b4' title 'training loss (contrastive on pairs, or the set loss; epoch mean)', \
     '$tmp/epochs.dat' using 1:3 with linespoints lw 2 pt 5 ps 1.2 lc rgb '#d62728' title 'contrastive loss on the test pairs (evaluated epochs)'
" "900,560"
fi

if [ -n "$eval_dir" ]; then
  half=$(awk '$1 == "half_margin" { print $2 }' "$eval_dir/threshold.txt")
  best=$(awk '$1 == "best_threshold_train" { print $2 }' "$eval_dir/threshold.txt")
  [ -n "$half" ] && [ -n "$best" ] || die "--eval-dir $eval_dir: threshold.txt lacks half_margin or best_threshold_train"

  # ---- distances.png: histograms of positive and negative pair distances, thresholds ----
  draw distances.png "
set datafile commentschars '#'
stats '$eval_dir/distances.tsv' using 1 nooutput
n = STATS_records
bw = STATS_max / 80.0
bin(x) = bw * (floor(x / bw) + 0.5)
set title sprintf('Test pair distances (%d pairs)', n)
set xlabel 'embedding distance D'
set ylabel 'pairs per bin'
set grid lc rgb '#dddddd'
set style fill transparent solid 0.5 noborder
set boxwidth bw
set key top right box opaque
set xrange [0:STATS_max * 1.02]
set yrange [0:*]
set arrow 1 from $half, graph 0 to $half, graph 1 nohead lw 2 dt 2 lc rgb '#000000' front
set arrow 2 from $best, graph 0 to $best, graph 1 nohead lw 2 dt 3 lc rgb '#ff7f0e' front
plot '$eval_dir/distances.tsv' using (bin(\$1)):(\$2 == 1 ? 1 : 0) smooth freq with boxes lc rgb '#2ca02c' title 'same class (positive pairs)', \
     '' using (bin(\$1)):(\$2 == 0 ? 1 : 0) smooth freq with boxes lc rgb '#d62728' title 'different classes (negative pairs)', \
     NaN with lines lw 2 dt 2 lc rgb '#000000' title sprintf('threshold m/2 = %.3f', $half), \
     NaN with lines lw 2 dt 3 lc rgb '#ff7f0e' title sprintf('best threshold on training pairs = %.3f', $best)
" "900,560"

  # ---- predictions.png: a grid of test pairs with distance and verdict, right/wrong ----
  cols=6 cw=70 ch=50
  n=$(grep -vc '^#' "$eval_dir/predictions.tsv" || true)
  [ "$n" -gt 0 ] || die "--eval-dir $eval_dir: predictions.tsv holds no pairs"
  rows=$(( (n + cols - 1) / cols ))
  # one label and one frame per pair, from predictions.tsv (tab-separated)
  awk -F'\t' -v cols=$cols -v cw=$cw -v ch=$ch '
    /^#/ { next }
    {
      s = $1; x0 = (s % cols) * cw; y0 = -int(s / cols) * ch
      color = ($8 == "right") ? "#1a9641" : "#d7191c"
      mark = ($8 == "right") ? "\342\234\223" : "\342\234\227"
      printf "set object %d rect from %g,%g to %g,%g fs empty border lc rgb \"%s\" lw 3 front\n", s + 1, x0 - 1.5, y0 - 28.5, x0 + 58.5, y0 + 0.5, color
      printf "set label %d \"%s %s  D=%.3f\" at %g,%g center tc rgb \"%s\" font \",10\" front\n", 2 * s + 1, mark, $7, $6, x0 + 28.5, y0 + 11, color
      printf "set label %d \"%s | %s\" at %g,%g center tc rgb \"#555555\" font \",8\" front\n", 2 * s + 2, $9, $10, x0 + 28.5, y0 + 4.5
    }' "$eval_dir/predictions.tsv" >"$tmp/labels.gp"
  width=$(( cols * 175 + 40 )) height=$(( rows * 125 + 90 ))
  draw predictions.png "
load '$tmp/labels.gp'
set title sprintf('Test pairs at threshold m/2 = %.2f: left | right image, verdict, distance D and the classes (green ✓ right, red ✗ wrong)', $half)
set palette gray negative
set cbrange [0:255]
unset colorbox
unset border
unset tics
unset key
set size ratio -1
set xrange [-4:$(( cols * cw - cw + 62 ))]
set yrange [$(( -(rows - 1) * ch - 31 )):16]
set lmargin 1
set rmargin 1
set bmargin 1
plot for [k=0:$((n - 1))] '$eval_dir/predictions_images.dat' matrix index k \
     using ((k % $cols) * $cw + \$1 + (\$1 >= 28 ? 2 : 0)):(-int(k / $cols) * $ch - \$2):3 with image
" "$width,$height"

  # ---- embeddings.png: the test embeddings along their top two principal components ----
  emb=$eval_dir/embeddings.tsv
  read -r ev1 ev2 < <(awk -F'\t' '$1 == "# explained_variance" { print $2, $3 }' "$emb")
  [ -n "${ev2:-}" ] || die "--eval-dir $eval_dir: embeddings.tsv lacks the explained_variance line"
  n_points=$(grep -vc '^#' "$emb" || true)
  [ "$n_points" -gt 0 ] || die "--eval-dir $eval_dir: embeddings.tsv holds no points"
  dim=$(sed -n '1s/.*(dim \([0-9]*\)).*/\1/p' "$emb")
  # one legend entry per class (name from the file), the colours of matplotlib's tab10
  awk -F'\t' '
    BEGIN { split("1f77b4 ff7f0e 2ca02c d62728 9467bd 8c564b e377c2 7f7f7f bcbd22 17becf", col, " ") }
    $1 == "# class" {
      name = $3; gsub("\047", "\047\047", name)
      printf "%sNaN with points pt 7 ps 1.6 lc rgb \"#%s\" title \047%s\047", sep, col[$2 % 10 + 1], name
      sep = ", "
    }' "$emb" >"$tmp/legend.gp"
  # each point in its class's colour at alpha 0x50 (ARGB: transparent enough that overlapping
  # classes stay visible), in the file's order so that no class is drawn over all the others
  draw embeddings.png "
set datafile commentschars '#'
array col[10] = [0x501f77b4, 0x50ff7f0e, 0x502ca02c, 0x50d62728, 0x509467bd, 0x508c564b, 0x50e377c2, 0x507f7f7f, 0x50bcbd22, 0x5017becf]
set title sprintf(\"The %d test embeddings (dim %s) projected to 2-D by PCA\\nthe top two principal components explain %.1f %% + %.1f %% = %.1f %% of the variance\", $n_points, '$dim', 100 * $ev1, 100 * $ev2, 100 * ($ev1 + $ev2))
set xlabel sprintf('principal component 1 (%.1f %% of the variance)', 100 * $ev1)
set ylabel sprintf('principal component 2 (%.1f %% of the variance)', 100 * $ev2)
set grid lc rgb '#e5e5e5'
set size ratio -1
set key outside right center box opaque spacing 1.4 Left reverse width 1 title 'class'
plot '$emb' using 1:2:(col[int(\$3) % 10 + 1]) with points pt 7 ps 0.45 lc rgb variable notitle, \\
     $(cat "$tmp/legend.gp")
" "1100,800"
fi
