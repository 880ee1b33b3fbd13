package plan

// Rendezvous (highest random weight) hashing: every (platform, node) pair
// gets a pseudo-random score and a platform prefers the node with the highest
// one. A node's score for a platform does not depend on the other nodes, so
// adding a node moves a platform only if the new node outscores the old
// choice, and removing a node moves only the platforms it had.
//
// The score is FNV-1a over "affinity \x00 platform \x00 node name", finished
// with MurmurHash3's fmix64 so that names differing in one byte still get
// unrelated scores. Both are fixed, published functions: a saved plan can be
// reproduced by any farm-plan version on any machine. The separators cannot
// occur in a command-line argument or a canonical platform, so two different
// keys never hash the same bytes.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// scorePrefix hashes the part of the key shared by every node of a platform,
// so scoring thousands of candidates hashes only their names.
func scorePrefix(affinity, platform string) uint64 {
	h := fnvAdd(fnvOffset, affinity)
	h = fnvAdd(h, "\x00")
	h = fnvAdd(h, platform)
	return fnvAdd(h, "\x00")
}

// scoreWith completes a prefix with the node name.
func scoreWith(prefix uint64, node string) uint64 {
	return fmix64(fnvAdd(prefix, node))
}

func fnvAdd(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
