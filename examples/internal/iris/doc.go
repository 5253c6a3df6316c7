// Package iris is the machine learning behind miniray's examples: Fisher's Iris
// measurements, a seeded train/test split, feature standardisation and a
// multinomial logistic-regression (softmax) classifier trained by full-batch
// gradient descent with momentum.
//
// It is small enough to read in one sitting and fast enough that an example runs
// in well under a second, yet it is real work: the loss falls, the held-out
// accuracy reaches about 0.95, and a learning rate set too low shows in the
// numbers. Everything is deterministic: the same data, split seed and settings
// give the same model bit for bit, so runs recorded by miniray can be compared.
package iris
