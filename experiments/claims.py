"""The claims of each chapter of the book, and the experiments that measure them.

Each :class:`Claim` restates one claim of *Neural Networks Explained* in the project's words, names
the part of the chapter it comes from (``section``: a question and its answer, the chapter's text,
or a glossary entry), and lists the experiments that measure, draw and assert it
(``covered_by``, module names of :data:`experiments.book.EXPERIMENTS`). A claim that no
experiment can measure says why in ``uncovered``. The page's chapter cards list them; a test
checks that every experiment covers a claim and that every claim is covered or says why not.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Claim", "CLAIMS", "for_chapter"]


class Claim(NamedTuple):
    chapter: int
    section: str
    text: str
    covered_by: tuple[str, ...] = ()
    uncovered: str = ""


_C = Claim

CLAIMS: tuple[Claim, ...] = (
    # 1. Neural networks as function approximators
    _C(1, "Q: Does a network store the training examples?",
       "A network keeps parameters that shape a function, not the examples: a small network "
       "holds far fewer numbers than its training set and predicts unseen inputs better than a "
       "table that looks the examples up.",
       ("ch01_function_approximation",)),
    _C(1, "Q: Does a network store the training examples?",
       "An overly large model can memorize data: random labels are learned to 100% and stay at "
       "chance on held-out examples.",
       ("ch01_function_approximation",)),
    _C(1, "Glossary: function approximation",
       "Learning fits a parameterized function to input-output pairs; a wider network "
       "approximates a curve more closely.",
       ("ch01_function_approximation",)),
    _C(1, "Q: Why is the function view useful?",
       "One framework (a model, a loss, one training loop) serves classification, regression, "
       "translation and control alike.",
       ("ch01_one_framework_many_tasks",)),
    # 2. Vectors, matrices and layers
    _C(2, "Q: What does a neuron represent mathematically?",
       "A neuron is one coordinate of xW + b followed by the activation: the matrix form equals "
       "the neuron-by-neuron sum.",
       ("ch02_batched_matrix_form",)),
    _C(2, "Q: Why use matrices instead of writing every neuron separately?",
       "The matrix form matches hardware: a batch reuses each weight it reads, so the bytes moved "
       "per example fall with the batch size while the arithmetic per example stays fixed.",
       ("ch02_batched_matrix_form",)),
    _C(2, "Glossary: batch",
       "Processing examples together raises throughput (drawn from medians of repeats).",
       ("ch02_batched_matrix_form",)),
    # 3. Activation functions and nonlinearity
    _C(3, "Q: Why not use only linear layers?",
       "A stack of linear layers is one linear layer, so it cannot fit a nonlinear boundary.",
       ("ch03_linear_collapse",)),
    _C(3, "Q: Is ReLU always the best activation?",
       "No activation wins everywhere: ReLU is within 2 points of the best on a deep "
       "classifier, yet ranks last on a physics-informed network that needs a second "
       "derivative, which the smooth activations have.",
       ("ch03_no_single_best_activation",)),
    _C(3, "Glossary: vanishing gradient",
       "Sigmoid layers shrink the gradient on its way back, so a deep sigmoid stack's first "
       "layers barely learn.",
       ("ch03_no_single_best_activation", "ch14_failure_modes")),
    # 4. Loss functions define the goal
    _C(4, "Q: Why must the loss be differentiable or almost differentiable?",
       "Gradient descent needs a derivative: accuracy as a loss has a zero gradient almost "
       "everywhere and training on it changes nothing, while cross-entropy trains.",
       ("ch04_high_accuracy_high_loss",)),
    _C(4, "Q: Can high accuracy and high loss happen together?",
       "Yes: a few confident mistakes carry most of the loss, and rescaling the logits moves the "
       "loss with the accuracy unchanged.",
       ("ch04_high_accuracy_high_loss",)),
    _C(4, "Glossary: cross-entropy, mean squared error",
       "Cross-entropy keeps a large gradient on a confident mistake where squared error's "
       "vanishes.",
       ("ch04_high_accuracy_high_loss",)),
    _C(4, "Glossary: regularization",
       "A penalty on the weights reduces overfitting.",
       ("ch13_regularization_curves",)),
    # 5. Forward pass
    _C(5, "Q: Why store intermediate activations during training?",
       "Backpropagation needs them: a training step's memory grows with depth, inference's does "
       "not, and rematerialization trades the memory for recomputation.",
       ("ch05_training_stores_activations",)),
    _C(5, "Q: Is inference the same as training?",
       "No: a training step also computes the loss, the gradients and the update, at several "
       "times the arithmetic of a prediction.",
       ("ch05_training_stores_activations",)),
    _C(5, "Glossary: softmax",
       "Softmax turns scores into positive probabilities that sum to one, even for huge logits.",
       ("ch05_training_stores_activations",)),
    # 6. Gradient descent
    _C(6, "Q: Why subtract the gradient?",
       "A small step against the gradient lowers the loss and a step along it raises it, by "
       "about the learning rate times the squared gradient norm.",
       ("ch06_learning_rate_noise_saddles",)),
    _C(6, "Glossary: learning rate",
       "Too small a step crawls and too large a step diverges.",
       ("ch06_learning_rate_noise_saddles",)),
    _C(6, "Glossary: mini-batch SGD",
       "A mini-batch gradient is a noisy estimate of the full gradient; its error falls as one "
       "over the square root of the batch size.",
       ("ch06_learning_rate_noise_saddles",)),
    _C(6, "Q: Can gradient descent get stuck?",
       "It stalls at a saddle, which noise, momentum and adaptive steps escape.",
       ("ch06_learning_rate_noise_saddles",)),
    # 7. Backpropagation
    _C(7, "Q: Why is backpropagation efficient?",
       "It computes every parameter's gradient for the arithmetic of a few forward passes, "
       "while forward mode and finite differences pay per parameter.",
       ("ch07_backprop_costs_a_few_forward_passes",)),
    _C(7, "Glossary: backpropagation, chain rule",
       "The chain rule applied backwards gives the same gradient as forward mode and finite "
       "differences.",
       ("ch07_backprop_costs_a_few_forward_passes",)),
    _C(7, "Q: Is backpropagation biologically realistic?",
       "Backpropagation is an engineering algorithm, not a confirmed model of how brains learn.",
       uncovered="a statement about neuroscience; nothing a program can measure settles it"),
    # 8. Parameter updates and optimizers
    _C(8, "Q: Why is Adam popular?",
       "Adam works well with little tuning: its default learning rate is near its best on "
       "every task tried, and its good range is wider than SGD's.",
       ("ch08_adam_needs_little_tuning",)),
    _C(8, "Q: Does a better optimizer guarantee better generalization?",
       "No: the optimizer that lowers the training loss fastest is not the one that validates "
       "best.",
       ("ch08_optimizers_train_vs_validation",)),
    _C(8, "Glossary: momentum, Adam",
       "Momentum and Adam accumulate the update direction and leave a flat region sooner.",
       ("ch06_learning_rate_noise_saddles", "ch08_adam_needs_little_tuning")),
    _C(8, "Glossary: weight decay",
       "Weight decay keeps the parameters small: their norm falls as the decay grows.",
       ("ch13_regularization_curves",)),
    # 9. Data pipelines and normalization
    _C(9, "Q: Why compute normalization statistics only on training data?",
       "Statistics from the test set leak it and overstate the deployed accuracy.",
       ("ch09_preprocessing",)),
    _C(9, "Q: Can preprocessing change model behavior?",
       "Inconsistent scaling or tokenization at inference makes a trained model fail with its "
       "architecture unchanged.",
       ("ch09_preprocessing",)),
    # 10. Multilayer perceptrons
    _C(10, "Q: Are MLPs obsolete?",
       "On real tables an MLP is on par with a random forest, the usual strong baseline.",
       ("ch10_mlp_images_vs_tables",)),
    _C(10, "Q: Are MLPs obsolete?",
       "An MLP over learned embeddings of categorical columns matches one-hot columns with a "
       "fifth of their parameters and beats integer codes and a random forest.",
       ("ch10_embeddings_for_categories",)),
    _C(10, "Q: Are MLPs obsolete?",
       "MLPs are components of modern architectures: most of a Transformer block's parameters "
       "are its MLP.",
       ("ch10_embeddings_for_categories",)),
    _C(10, "Q: Why can dense layers be inefficient for images?",
       "A dense layer wires every pixel to every unit: its parameters grow with the image, a "
       "convolution's do not.",
       ("ch10_mlp_images_vs_tables",)),
    # 11. Convolutional neural networks
    _C(11, "Text: parameter sharing, translation equivariance",
       "A convolution reuses its filters at every position, so shifting the image shifts the "
       "feature map (exactly, away from the borders).",
       ("ch11_translation_equivariance",)),
    _C(11, "Q: What does pooling do?",
       "Pooling summarizes nearby activations: larger windows change less under small shifts.",
       ("ch11_translation_equivariance",)),
    _C(11, "Text: hierarchical feature extraction",
       "Each layer's units see a larger region of the image than the last (a first-layer unit a "
       "6x6 patch: an edge or a stroke), and the digit is read off linearly better at every "
       "layer.",
       ("ch11_filter_hierarchy",)),
    _C(11, "Text: fewer parameters, better data efficiency",
       "A CNN reaches with a fraction of the data what an MLP reaches with all of it, with fewer "
       "parameters.",
       ("ch11_cnn_vs_mlp",)),
    _C(11, "Q: Why are CNNs good for images?",
       "Local filters reused across positions beat a dense network on grid-like data.",
       ("ch11_cnn_vs_mlp",)),
    # 12. RNNs and Transformers
    _C(12, "Q: Why did Transformers replace many RNNs?",
       "Attention reaches a token far back directly: a Transformer solves a long-range recall "
       "that a GRU of the same budget loses as the distance grows.",
       ("ch12_gru_vs_transformer",)),
    _C(12, "Q: Why did Transformers replace many RNNs?",
       "A Transformer trains in parallel over positions: its sequential steps per pass do not "
       "grow with the length, a GRU's grow one per token.",
       ("ch12_gru_vs_transformer",)),
    _C(12, "Q: Do Transformers understand word order?",
       "Attention alone is permutation-equivariant; positional encodings break the symmetry.",
       ("ch12_positions_break_permutation_symmetry",)),
    _C(12, "Glossary: RNN, hidden state",
       "A recurrent network carries a hidden state from step to step.",
       ("ch12_gru_vs_transformer",)),
    # 13. Generalization, validation and regularization
    _C(13, "Q: Why not train until the loss is as low as possible?",
       "Training loss keeps falling after validation loss turns up; early stopping keeps the "
       "best-validation model.",
       ("ch13_early_stopping",)),
    _C(13, "Q: Is a larger dataset a form of regularization?",
       "More data narrows the gap between training and validation accuracy.",
       ("ch13_regularization_curves",)),
    _C(13, "Text: dropout, augmentation, weight decay",
       "Dropout, data augmentation and weight decay each raise validation accuracy over the "
       "same network trained without them.",
       ("ch13_regularization_curves",)),
    _C(13, "Text: the bias-variance tradeoff",
       "Too small a network underfits; a large unregularized one overfits.",
       ("ch13_regularization_curves",)),
    _C(13, "Text: metrics aligned with class balance and deployment",
       "Overall accuracy hides a group the model fails and a shift it cannot survive.",
       ("ch14_shortcut_fails_in_deployment",)),
    # 14. Common failure modes
    _C(14, "Text: failures are predictable and diagnosable",
       "Each detector finds its injected fault (label noise, imbalance, shift, spurious "
       "feature, vanishing and exploding gradients, under- and overfitting) and passes a clean "
       "control.",
       ("ch14_failure_modes",)),
    _C(14, "Text: gradient clipping, normalization, residual connections, initialization",
       "Each remedy fixes its fault: clipping an exploding run, normalization, residual "
       "connections and a better initialization a vanishing one.",
       ("ch14_remedies",)),
    _C(14, "Text: dataset problems",
       "Mislabeled examples, class imbalance, leakage and spurious correlations are each "
       "detected; dropping the flagged labels, rebalancing the classes, training-only "
       "statistics and removing the flagged shortcut each fix their fault.",
       ("ch14_failure_modes", "ch14_remedies", "ch09_preprocessing",
        "ch14_shortcut_fails_in_deployment")),
    _C(14, "Text: numerical issues and learning rates",
       "Too large a learning rate stops learning entirely (every ReLU saturates at zero), too "
       "small a rate barely moves; the rate a range test suggests trains.",
       ("ch14_remedies", "ch14_failure_modes")),
    _C(14, "Q: What is the first thing to check when training fails?",
       "A pipeline bug shows on a tiny subset: the loss does not fall, where the fixed pipeline "
       "memorizes it.",
       ("ch14_remedies",)),
    _C(14, "Q: Can high benchmark accuracy still be unsafe?",
       "A shortcut model scores high on its benchmark and fails on deployment data without the "
       "shortcut; an underrepresented group fares far worse than the average says; removing the "
       "shortcut and more data of the group fix each.",
       ("ch14_shortcut_fails_in_deployment",)),
    # 15. End-to-end training loop
    _C(15, "Q: Why log both training and validation metrics?",
       "Their gap shows the run memorizing wrong labels while validation accuracy falls.",
       ("ch15_end_to_end",)),
    _C(15, "Q: Why save checkpoints?",
       "The best-validation checkpoint beats the last epoch on test data, and a killed run "
       "resumes to the same parameters, bit for bit.",
       ("ch15_end_to_end",)),
    _C(15, "Glossary: gradient norm",
       "The gradient norm, logged every epoch, stays bounded in a stable run and climbs by "
       "orders of magnitude before an unstable one's loss turns non-finite.",
       ("ch15_end_to_end",)),
)  # fmt: skip


def for_chapter(chapter: int) -> list[Claim]:
    """The claims of ``chapter``, in the book's order."""
    return [c for c in CLAIMS if c.chapter == chapter]
