package postprocess

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/ulikunitz/xz"
)

// Why parallel: gzip and xz run at 10-50 MiB/s per core, so a multi-GiB
// disk image takes minutes on one core. Both are split into blocks that
// are compressed concurrently and written in order:
//
//   - gzip (pgzip's technique): each block is a run of deflate blocks
//     ending with a sync flush, compressed with the previous block's last
//     32 KiB as dictionary; the concatenation is one ordinary deflate
//     stream inside one gzip member, so every gunzip reads it.
//   - xz: each block is a complete xz stream; the xz format defines a
//     file as a sequence of streams, and xz, xzcat and Go readers decode
//     them all.

// encodeFunc compresses one block into dst. dict is the tail of the
// previous block (nil for the first); last marks the final block, which
// may be empty.
type encodeFunc func(dst *bytes.Buffer, block, dict []byte, first, last bool) error

// chunkWriter splits its input into blocks, encodes up to `workers`
// blocks concurrently and writes the results to dst in order.
type chunkWriter struct {
	dst       io.Writer
	encode    encodeFunc
	blockSize int
	dictSize  int

	buf     []byte
	tail    []byte // the last dictSize bytes before buf: its dictionary
	first   bool
	blocks  sync.Pool         // of *[]byte input blocks, reused to spare the GC
	outs    sync.Pool         // of *bytes.Buffer encoded blocks
	pending chan chan encoded // results in input order
	done    chan struct{}     // closed when the drain goroutine ends
	closed  bool

	mu  sync.Mutex
	err error // first error of encoding or writing
}

type encoded struct {
	buf *bytes.Buffer
	err error
}

func newChunkWriter(dst io.Writer, blockSize, dictSize int, enc encodeFunc) *chunkWriter {
	workers := runtime.GOMAXPROCS(0)
	c := &chunkWriter{
		dst: dst, encode: enc, blockSize: blockSize, dictSize: dictSize,
		first:   true,
		pending: make(chan chan encoded, workers),
		done:    make(chan struct{}),
	}
	c.buf = c.newBlock()
	go c.drain()
	return c
}

func (c *chunkWriter) newBlock() []byte {
	if b, ok := c.blocks.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, c.blockSize)
}

// drain writes encoded blocks in order. After an error it keeps
// receiving, so that producers never block, but writes nothing.
func (c *chunkWriter) drain() {
	defer close(c.done)
	for res := range c.pending {
		r := <-res
		if c.failed() != nil {
			continue
		}
		if r.err == nil {
			_, r.err = c.dst.Write(r.buf.Bytes())
			c.outs.Put(r.buf)
		}
		if r.err != nil {
			c.setErr(r.err)
		}
	}
}

func (c *chunkWriter) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *chunkWriter) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	if err := c.failed(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		k := copy(c.buf[len(c.buf):c.blockSize], p)
		c.buf = c.buf[:len(c.buf)+k]
		p = p[k:]
		n += k
		if len(c.buf) == c.blockSize {
			c.submit(false)
		}
	}
	return n, c.failed()
}

// submit hands the current block to a goroutine. Sending on pending
// blocks while `workers` blocks are in flight, which bounds memory.
func (c *chunkWriter) submit(last bool) {
	block, dict, first := c.buf, c.tail, c.first
	if c.dictSize > 0 {
		// A copy, so that block can be reused as soon as it is encoded.
		// Only the last block can be shorter than the dictionary.
		c.tail = append([]byte(nil), block[max(0, len(block)-c.dictSize):]...)
	}
	res := make(chan encoded, 1)
	c.pending <- res
	go func() {
		defer c.blocks.Put(&block)
		if err := c.failed(); err != nil {
			res <- encoded{err: err} // aborted or failed: save the CPU
			return
		}
		b, _ := c.outs.Get().(*bytes.Buffer)
		if b == nil {
			b = new(bytes.Buffer)
		}
		b.Reset()
		err := c.encode(b, block, dict, first, last)
		res <- encoded{b, err}
	}()
	c.first = false
	c.buf = c.newBlock()
}

// abort makes the blocks not yet encoded skip encoding and Close return
// err: after a failure only the blocks already being encoded are waited
// for.
func (c *chunkWriter) abort(err error) { c.setErr(err) }

// Close encodes the last block and waits until everything is written.
// It is safe to call more than once.
func (c *chunkWriter) Close() error {
	if !c.closed {
		c.closed = true
		c.submit(true)
		close(c.pending)
	}
	<-c.done
	return c.failed()
}

// gzipWriter is a parallel gzip writer producing a single gzip member.
type gzipWriter struct {
	dst  io.Writer
	cw   *chunkWriter
	crc  uint32
	size uint32 // ISIZE: the input length modulo 2^32
	hdr  bool
}

func newGzipWriter(dst io.Writer, level int) *gzipWriter {
	var pool sync.Pool // of *flate.Writer at this level
	enc := func(b *bytes.Buffer, block, dict []byte, _, last bool) error {
		fw, _ := pool.Get().(*flate.Writer)
		if fw == nil {
			var err error
			if fw, err = flate.NewWriterDict(b, level, dict); err != nil {
				return err
			}
		} else {
			fw.ResetDict(b, dict)
		}
		defer pool.Put(fw)
		if _, err := fw.Write(block); err != nil {
			return err
		}
		if last {
			return fw.Close() // final deflate block
		}
		return fw.Flush() // sync flush: ends byte-aligned, not final
	}
	return &gzipWriter{dst: dst, cw: newChunkWriter(dst, 1<<20, 32<<10, enc)}
}

func (g *gzipWriter) header() error {
	if g.hdr {
		return nil
	}
	g.hdr = true
	// RFC 1952: magic, deflate, no flags, no mtime (reproducible), no
	// extra flags, OS unknown.
	_, err := g.dst.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255})
	return err
}

func (g *gzipWriter) Write(p []byte) (int, error) {
	if err := g.header(); err != nil {
		return 0, err
	}
	g.crc = crc32.Update(g.crc, crc32.IEEETable, p)
	g.size += uint32(len(p))
	return g.cw.Write(p)
}

func (g *gzipWriter) abort(err error) { g.cw.abort(err) }

func (g *gzipWriter) Close() error {
	if err := g.header(); err != nil {
		g.cw.Close()
		return err
	}
	if err := g.cw.Close(); err != nil {
		return err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], g.crc)
	binary.LittleEndian.PutUint32(trailer[4:], g.size)
	_, err := g.dst.Write(trailer[:])
	return err
}

// xzBlockSize is the input of each xz stream: twice the default 8 MiB
// dictionary, so the dictionary is used fully. A variable so tests can
// make many streams from little data.
var xzBlockSize = 16 << 20

// newXZWriter writes a sequence of independent xz streams.
func newXZWriter(dst io.Writer) io.WriteCloser {
	enc := func(b *bytes.Buffer, block, _ []byte, first, _ bool) error {
		if len(block) == 0 && !first {
			return nil // an empty trailing block adds nothing
		}
		w, err := xz.WriterConfig{}.NewWriter(b)
		if err != nil {
			return err
		}
		if _, err := w.Write(block); err != nil {
			return err
		}
		return w.Close()
	}
	return newChunkWriter(dst, xzBlockSize, 0, enc)
}
