// Package textdist measures how far apart two names are, to find the "did
// you mean" candidate for a mistyped template option, HTTP path or boot
// command key.
package textdist

// Distance is the optimal string alignment distance between a and b:
// Levenshtein plus adjacent transpositions, so "entre" is one edit from
// "enter". It works on bytes, which is enough for the ASCII names kiln
// suggests.
func Distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
