//! The 43 GTSRB classes: `ClassId` to the sign's name (the English names of the
//! `signnames.csv` that commonly accompanies the benchmark, lower-cased).

/// Names of the GTSRB classes, indexed by `ClassId`.
pub const GTSRB_CLASSES: [&str; 43] = [
    "speed limit 20",
    "speed limit 30",
    "speed limit 50",
    "speed limit 60",
    "speed limit 70",
    "speed limit 80",
    "end of speed limit 80",
    "speed limit 100",
    "speed limit 120",
    "no passing",
    "no passing for vehicles over 3.5 t",
    "right of way at the next intersection",
    "priority road",
    "yield",
    "stop",
    "no vehicles",
    "vehicles over 3.5 t prohibited",
    "no entry",
    "general caution",
    "dangerous curve to the left",
    "dangerous curve to the right",
    "double curve",
    "bumpy road",
    "slippery road",
    "road narrows on the right",
    "road work",
    "traffic signals",
    "pedestrians",
    "children crossing",
    "bicycles crossing",
    "beware of ice/snow",
    "wild animals crossing",
    "end of all speed and passing limits",
    "turn right ahead",
    "turn left ahead",
    "ahead only",
    "go straight or right",
    "go straight or left",
    "keep right",
    "keep left",
    "roundabout mandatory",
    "end of no passing",
    "end of no passing for vehicles over 3.5 t",
];

/// The label a GTSRB `ClassId` gets in a dataset: two digits, so that sorted labels are in
/// `ClassId` order (class index = `ClassId`).
pub fn label_of(class_id: usize) -> String {
    format!("{class_id:02}")
}

/// The `ClassId` a label names, if it is a GTSRB class (`"14"`, `"00014"`, `"7"`).
pub fn class_id_of(label: &str) -> Option<usize> {
    let id: usize = label.trim().parse().ok()?;
    (id < GTSRB_CLASSES.len()).then_some(id)
}

/// A human name for a label: the GTSRB sign name if the label is a `ClassId`, else the
/// label itself (a folder name of the user's own dataset).
pub fn display_name(label: &str) -> String {
    match class_id_of(label) {
        Some(id) => GTSRB_CLASSES[id].to_string(),
        None => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_in_class_id_order_and_name_their_sign() {
        let mut labels: Vec<String> = (0..43).rev().map(label_of).collect();
        labels.sort();
        assert_eq!(labels[14], "14");
        assert_eq!(display_name(&labels[14]), "stop");
        assert_eq!(display_name("17"), "no entry");
        assert_eq!(class_id_of("00017"), Some(17));
        assert_eq!(class_id_of("43"), None);
        assert_eq!(display_name("my-sign"), "my-sign");
    }
}
