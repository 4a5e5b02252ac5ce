"""Text classification baseline: logistic regression on TF-IDF n-grams."""

import keras
import numpy as np
import tensorflow as tf


def bag_of_words_classifier(texts, label_ids, num_classes, seed=0):
    """Logistic regression on TF-IDF unigrams and bigrams, trained to convergence.

    A Keras model on raw strings: `TextVectorization(tf_idf)` then one softmax layer with
    L2 regularization, fitted full-batch with Adam (the data sets it is meant for are small).
    """
    keras.utils.set_random_seed(seed)
    vectorizer = keras.layers.TextVectorization(max_tokens=20000, ngrams=2, output_mode="tf_idf")
    vectorizer.adapt(tf.constant(texts))

    def featurize(batch):  # TF-IDF rows are >99 % zeros: sparse keeps training fast
        return tf.sparse.from_dense(vectorizer(tf.constant(batch)))

    features = featurize(texts)
    model = keras.Sequential([
        keras.Input((features.shape[-1],), sparse=True),
        keras.layers.Dense(num_classes, kernel_regularizer=keras.regularizers.L2(1e-4)),
    ])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    full_batch = tf.data.Dataset.from_tensors((features, np.asarray(label_ids))).repeat(300)
    model.fit(full_batch, epochs=1, shuffle=False, verbose=0)  # 300 full-batch steps
    return lambda new_texts: model.predict_on_batch(featurize(new_texts))


def bag_of_words(train_texts, train_label_ids, texts, num_classes=None, seed=0):
    """Class ids that `bag_of_words_classifier`, trained on `train_texts` and their
    `train_label_ids` (ints in `[0, num_classes)`; default: up to the largest id), predicts
    for `texts`.

    Example:
    >>> train = ["a good film", "good acting", "a bad film", "bad acting"] * 4
    >>> bag_of_words(train, [1, 1, 0, 0] * 4, ["good", "so bad"]).tolist()
    [1, 0]
    """
    if num_classes is None:
        num_classes = int(max(train_label_ids)) + 1
    predict = bag_of_words_classifier(train_texts, train_label_ids, num_classes, seed=seed)
    return predict(texts).argmax(-1)
