//! [`Trainer`]: one optimizer step at a time, with every buffer allocated up front.

use crate::linalg::Compute;
use crate::nn::{accuracy, Grads, Loss, Model, Trace};
use crate::optim::{OptimConfig, Optimizer};
use crate::tensor::{Mat, Scalar};

/// One optimizer step at a time, with every buffer allocated up front.
pub struct Trainer<T: Scalar> {
    pub model: Model<T>,
    /// Per-layer (η_w, wd_w, η_b, wd_b) when plain SGD is fused into backward.
    fused: Option<Vec<(T, T, T, T)>>,
    pub opt: Optimizer<T>,
    pub cx: Compute,
    pub loss: Loss,
    pub trace: Trace<T>,
    pub grads: Grads<T>,
    xb: Mat<T>,
    yb: Mat<T>,
}

impl<T: Scalar> Trainer<T> {
    /// A trainer for batches of up to `batch_capacity` rows.
    pub fn new(
        model: Model<T>,
        optim: &OptimConfig,
        cx: Compute,
        loss: Loss,
        batch_capacity: usize,
    ) -> Self {
        let opt = Optimizer::new(&model, optim);
        let fused = opt.fusable_sgd(&model);
        let trace = Trace::new(&model, batch_capacity);
        let grads = Grads::new(&model);
        let xb = Mat::zeros(batch_capacity, model.input_dim());
        let yb = Mat::zeros(batch_capacity, model.output_dim());
        Trainer {
            model,
            fused,
            opt,
            cx,
            loss,
            trace,
            grads,
            xb,
            yb,
        }
    }

    /// Forward + loss + backward on `batch` rows, filling `trace` and `grads`;
    /// returns the loss. Does not update.
    pub fn gradient(&mut self, x: &[T], y: &[T], batch: usize) -> f64 {
        self.model.forward(&self.cx, x, batch, &mut self.trace);
        let k = self.model.output_dim();
        let out = self.trace.z.last().unwrap().as_slice();
        let dout = self.trace.dz.last_mut().unwrap().as_mut_slice();
        let loss = self.loss.value_and_grad(out, y, batch, k, Some(dout));
        self.model
            .backward(&self.cx, &mut self.trace, &mut self.grads, false);
        loss
    }

    /// One optimizer step on `batch` rows of `x`, `y`; returns the batch loss
    /// before the update. Plain SGD takes the fused path (the update happens inside
    /// the backward pass, so `grads` is not filled); use [`gradient`](Self::gradient)
    /// when the gradients themselves are wanted.
    pub fn step(&mut self, x: &[T], y: &[T], batch: usize) -> f64 {
        match &self.fused {
            Some(rates) => {
                self.model.forward(&self.cx, x, batch, &mut self.trace);
                let k = self.model.output_dim();
                let out = self.trace.z.last().unwrap().as_slice();
                let dout = self.trace.dz.last_mut().unwrap().as_mut_slice();
                let loss = self.loss.value_and_grad(out, y, batch, k, Some(dout));
                self.model
                    .backward_sgd_update(&self.cx, &mut self.trace, rates);
                self.opt.count_step();
                loss
            }
            None => {
                let loss = self.gradient(x, y, batch);
                self.opt.step(&self.cx, &mut self.model, &self.grads);
                loss
            }
        }
    }

    /// Switch the fused SGD path off (the step then fills `grads` every time).
    pub fn unfused(mut self) -> Self {
        self.fused = None;
        self
    }

    /// One step on the rows `idx` of (`x`, `y`), gathered into the batch buffers.
    pub fn step_rows(&mut self, x: &Mat<T>, y: &Mat<T>, idx: &[usize]) -> f64 {
        let b = idx.len();
        self.xb.set_rows(b);
        self.yb.set_rows(b);
        for (r, &i) in idx.iter().enumerate() {
            self.xb.row_mut(r).copy_from_slice(x.row(i));
            self.yb.row_mut(r).copy_from_slice(y.row(i));
        }
        let (xb, yb) = (std::mem::take(&mut self.xb), std::mem::take(&mut self.yb));
        let loss = self.step(xb.as_slice(), yb.as_slice(), b);
        self.xb = xb;
        self.yb = yb;
        loss
    }

    /// Mean loss and accuracy on a whole set, in chunks of the batch capacity.
    pub fn evaluate(&mut self, x: &Mat<T>, y: &Mat<T>) -> (f64, f64) {
        let k = self.model.output_dim();
        let cap = self.trace.capacity();
        let (mut loss, mut hits) = (0.0, 0.0);
        let mut start = 0;
        while start < x.rows() {
            let b = cap.min(x.rows() - start);
            self.model.forward(
                &self.cx,
                &x.as_slice()[start * x.cols()..(start + b) * x.cols()],
                b,
                &mut self.trace,
            );
            let ys = &y.as_slice()[start * k..(start + b) * k];
            let out = self.trace.output().as_slice();
            loss += self.loss.value_and_grad(out, ys, b, k, None) * b as f64;
            hits += accuracy(out, ys, b, k) * b as f64;
            start += b;
        }
        let n = x.rows().max(1) as f64;
        (loss / n, hits / n)
    }
}
